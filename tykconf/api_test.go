package tykconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
)

// TestParseAPIFields: each field of a classic API definition.
func TestParseAPIFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		want API
	}{
		{
			name: "every field",
			json: `{
			  "api_id": "billing-1", "name": "Billing", "active": true, "domain": "API.Example.com.",
			  "use_keyless": true,
			  "proxy": {"listen_path": "/billing/", "target_url": "https://billing.internal:8443/v1", "strip_listen_path": true,
			            "transport": {"ssl_insecure_skip_verify": true}},
			  "use_mutual_tls_auth": true,
			  "client_certificates": ["` + id1 + `", "clients/alice.pem"],
			  "upstream_certificates": {"billing.internal:8443": "certs/gw.pem", "*": "` + id2 + `"},
			  "pinned_public_keys": {"billing.internal": "sha256//AAAA"},
			  "certificates": ["certs/api.pem"],
			  "mtls": {"client_cas": ["ca.pem"], "verify_depth": 0, "upstream_cas": ["roots.pem"]}
			}`,
			want: API{
				APIID: "billing-1", Name: "Billing", Active: true, Domain: "api.example.com",
				ListenPath: "/billing/", StripListenPath: true, InsecureSkipVerify: true,
				UseMutualTLSAuth:     true,
				ClientCertificates:   []string{id1, "apps/clients/alice.pem"},
				UpstreamCertificates: mtls.Map{"billing.internal:8443": "apps/certs/gw.pem", "*": id2},
				PinnedPublicKeys:     mtls.Map{"billing.internal": "sha256//AAAA"},
				Certificates:         []string{"apps/certs/api.pem"},
				MTLS:                 APIMTLS{ClientCAs: []string{"apps/ca.pem"}, VerifyDepth: new(int), UpstreamCAs: []string{"apps/roots.pem"}},
			},
		},
		{
			name: "the least: inactive, no name",
			json: `{"api_id": "x", "use_keyless": true, "proxy": {"listen_path": "/", "target_url": "http://10.0.0.1"}}`,
			want: API{APIID: "x", Name: "x", ListenPath: "/"},
		},
		{
			name: "internal",
			json: `{"api_id": "x", "active": true, "internal": true, "use_keyless": true, "proxy": {"listen_path": "/x", "target_url": "http://a"}}`,
			want: API{APIID: "x", Name: "x", Active: true, Internal: true, ListenPath: "/x"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAPI(filepath.Join("apps", "a.json"), []byte(tc.json))
			require.NoError(t, err)
			assert.NotNil(t, a.TargetURL)
			if d := cmp.Diff(tc.want, *a, cmpopts.IgnoreFields(API{}, "File", "Dir", "TargetURL", "Warnings")); d != "" {
				t.Errorf("ParseAPI (-want +got):\n%s", d)
			}
			assert.Equal(t, tc.want.Active && !tc.want.Internal, a.Served())
		})
	}
}

func TestLoadAPIs(t *testing.T) {
	write := func(dir, name, js string) {
		t.Helper()
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(js), 0o600))
	}
	def := func(id, domain, lp string, active bool) string {
		return fmt.Sprintf(`{"api_id": %q, "active": %t, "use_keyless": true, "domain": %q, "proxy": {"listen_path": %q, "target_url": "http://up"}}`,
			id, active, domain, lp)
	}
	t.Run("in name order, only .json files", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "b.json", def("b", "", "/b/", true))
		write(dir, "a.json", def("a", "", "/a/", false))
		write(dir, "notes.txt", "not JSON")
		write(dir, ".hidden.json", "not JSON")
		require.NoError(t, os.Mkdir(filepath.Join(dir, "sub.json"), 0o700))
		apis, err := LoadAPIs(dir)
		require.NoError(t, err)
		require.Len(t, apis, 2)
		assert.Equal(t, "a", apis[0].APIID)
		assert.False(t, apis[0].Served())
		assert.Equal(t, filepath.Join(dir, "b.json"), apis[1].File)
	})
	t.Run("two files with one api_id", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "a.json", def("same", "", "/a/", true))
		write(dir, "b.json", def("same", "", "/b/", true))
		_, err := LoadAPIs(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), filepath.Join(dir, "b.json")+": api_id: \"same\" is also the api_id of "+filepath.Join(dir, "a.json"))
	})
	t.Run("two active APIs on one domain and listen path", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "a.json", def("a", "x.com", "/p/", true))
		write(dir, "b.json", def("b", "x.com", "/p/", true))
		write(dir, "c.json", def("c", "x.com", "/p/", false))
		_, err := LoadAPIs(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "b.json: proxy.listen_path: \"/p/\" on domain \"x.com\" is also the listen path of")
	})
	t.Run("one listen path on two domains, unless domains are off", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "a.json", def("a", "x.com", "/p/", true))
		write(dir, "b.json", def("b", "y.com", "/p/", true))
		apis, err := LoadAPIs(dir)
		require.NoError(t, err)
		assert.Error(t, CheckRoutes(apis, false), "without enable_custom_domains both answer everywhere")
	})
	t.Run("a bad file names itself", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "a.json", def("a", "", "/a/", true))
		write(dir, "billing.json", `{"api_id": "b", "proxy": {"listen_path": "/b/", "target_url": "ftp://x"}}`)
		_, err := LoadAPIs(dir)
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), filepath.Join(dir, "billing.json")+": proxy.target_url: "), err.Error())
	})
	t.Run("a missing directory", func(t *testing.T) {
		_, err := LoadAPIs(filepath.Join(t.TempDir(), "none"))
		var ce *Error
		require.True(t, errors.As(err, &ce))
	})
}
