package tykconf

import (
	"crypto/tls"
	"errors"
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

const id1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const id2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// TestParseGatewayFields: each of Tyk's fields of tyk.conf, and the mtls
// object, lands where it should; relative paths are read from the file's
// directory, IDs and pins are left as written.
func TestParseGatewayFields(t *testing.T) {
	conf := `{
	  "listen_address": "127.0.0.1",
	  "listen_port": 8443,
	  "secret": "s3cret",
	  "app_path": "apps/",
	  "enable_custom_domains": true,
	  "control_api_hostname": "Admin.Example.com",
	  "http_server_options": {
	    "use_ssl": true,
	    "ssl_certificates": ["` + id1 + `", "certs/server.pem", "/etc/tyk/other.pem"],
	    "min_version": 772,
	    "max_version": 772,
	    "ssl_ciphers": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
	    "enable_strict_routes": true
	  },
	  "security": {
	    "private_certificate_encoding_secret": "store-secret",
	    "pinned_public_keys": {"pay.example.com": "sha256//AAAA, certs/pin.pem, ` + id2 + `"},
	    "certificates": {
	      "upstream": {"*.internal": "org1` + id1 + `", "billing:8443": "certs/billing.pem", "*": "/abs/default.pem"},
	      "apis": ["` + id2 + `", "certs/ops.pem"]
	    }
	  },
	  "proxy_ssl_insecure_skip_verify": true,
	  "proxy_ssl_min_version": 771,
	  "unknown_field": {"ignored": true},
	  "mtls": {
	    "store_dir": "store",
	    "client_cas": ["cas/clients.pem"],
	    "verify_depth": 2,
	    "upstream_cas": ["/etc/ssl/roots.pem"],
	    "admin_client_cas": ["cas/admin.pem"],
	    "admin_verify_depth": 3
	  }
	}`
	g, err := ParseGateway(filepath.Join("conf", "tyk.conf"), []byte(conf))
	require.NoError(t, err)
	want := &Gateway{
		File: "conf/tyk.conf", Dir: "conf",
		ListenAddress: "127.0.0.1", ListenPort: 8443, Secret: "s3cret", AppPath: "conf/apps",
		EnableCustomDomains: true, ControlAPIHostname: "admin.example.com",
		UseSSL:             true,
		SSLCertificates:    []string{id1, "conf/certs/server.pem", "/etc/tyk/other.pem"},
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		CipherSuites:       []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		EnableStrictRoutes: true,
		UpstreamCertificates: mtls.Map{"*.internal": "org1" + id1, "billing:8443": "conf/certs/billing.pem",
			"*": "/abs/default.pem"},
		APIClients:                 []string{id2, "conf/certs/ops.pem"},
		PinnedPublicKeys:           mtls.Map{"pay.example.com": "sha256//AAAA,conf/certs/pin.pem, " + id2},
		StoreSecret:                "store-secret",
		ProxySSLInsecureSkipVerify: true,
		ProxySSLMinVersion:         tls.VersionTLS12,
		MTLS: GatewayMTLS{
			StoreDir: "conf/store", ClientCAs: []string{"conf/cas/clients.pem"}, VerifyDepth: 2,
			UpstreamCAs: []string{"/etc/ssl/roots.pem"}, AdminClientCAs: []string{"conf/cas/admin.pem"}, AdminVerifyDepth: 3,
		},
	}
	if d := cmp.Diff(want, g); d != "" {
		t.Errorf("ParseGateway (-want +got):\n%s", d)
	}
}

func TestParseGatewayDefaults(t *testing.T) {
	g, err := ParseGateway("tyk.conf", []byte(`{"secret": "only"}`))
	require.NoError(t, err)
	assert.Equal(t, 8080, g.ListenPort, "Tyk's default port")
	assert.Equal(t, "only", g.StoreSecret, "Tyk falls back to secret for private_certificate_encoding_secret")
	assert.False(t, g.UseSSL)
	assert.Empty(t, g.AppPath)
	assert.Nil(t, g.UpstreamCertificates)
	assert.Contains(t, strings.Join(g.Warnings, "\n"), "tyk.conf: http_server_options.use_ssl: false")

	g, err = ParseGateway("tyk.conf", []byte(`{"listen_port": 0}`))
	require.NoError(t, err)
	assert.Equal(t, 0, g.ListenPort, "an explicit 0 is a port the system picks")
}

func TestStoreSecretFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tyk.conf")
	require.NoError(t, os.WriteFile(path, []byte(`{"security": {"private_certificate_encoding_secret": "from-file"}}`), 0o600))
	t.Setenv(StoreSecretEnv, "")
	g, err := LoadGateway(path)
	require.NoError(t, err)
	assert.Equal(t, "from-file", g.StoreSecret)
	t.Setenv(StoreSecretEnv, "from-env")
	g, err = LoadGateway(path)
	require.NoError(t, err)
	assert.Equal(t, "from-env", g.StoreSecret, "MTLS_STORE_SECRET wins over the file")
}

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

// TestParseRejects: every rejected input, each an *Error naming the file
// and the field.
func TestParseRejects(t *testing.T) {
	api := func(fields string) string {
		return `{"api_id": "a", "active": true, "proxy": {"listen_path": "/a/", "target_url": "https://up:8443"}` + fields + `}`
	}
	apiWith := func(proxy string) string {
		return `{"api_id": "a", "active": true, "proxy": ` + proxy + `}`
	}
	for _, tc := range []struct {
		name, file, json string
		want             string // the error's text starts with it
	}{
		{"gateway: not JSON", "tyk.conf", `{"listen_port": 80,`, "tyk.conf: line 1, column 19: unexpected end of JSON input"},
		{"gateway: trailing garbage", "tyk.conf", `{} x`, "tyk.conf: line 1, column 4: invalid character 'x'"},
		{"gateway: not an object", "tyk.conf", `[1]`, "tyk.conf: the file is a JSON array, not an object"},
		{"gateway: empty", "tyk.conf", ` `, "tyk.conf: empty file"},
		{"gateway: port of the wrong type", "tyk.conf", `{"listen_port": "8080"}`, "tyk.conf: listen_port: a JSON string, want an integer"},
		{"gateway: port out of range", "tyk.conf", `{"listen_port": 70000}`, "tyk.conf: listen_port: 70000 is not a port"},
		{"gateway: use_ssl not a bool", "tyk.conf", `{"http_server_options": {"use_ssl": "yes"}}`, "tyk.conf: http_server_options.use_ssl: a JSON string, want true or false"},
		{"gateway: ssl_certificates not a list", "tyk.conf", `{"http_server_options": {"ssl_certificates": "a.pem"}}`, "tyk.conf: http_server_options.ssl_certificates: a JSON string, want an array"},
		{"gateway: empty ssl certificate", "tyk.conf", `{"http_server_options": {"ssl_certificates": [""]}}`, "tyk.conf: http_server_options.ssl_certificates[0]: empty value"},
		{"gateway: min_version not a TLS version", "tyk.conf", `{"http_server_options": {"min_version": 12}}`, "tyk.conf: http_server_options.min_version: 12 is not a TLS version"},
		{"gateway: min above max", "tyk.conf", `{"http_server_options": {"min_version": 772, "max_version": 771}}`, "tyk.conf: http_server_options.min_version: 772 is above max_version 771"},
		{"gateway: unknown cipher", "tyk.conf", `{"http_server_options": {"ssl_ciphers": ["RC5"]}}`, "tyk.conf: http_server_options.ssl_ciphers[0]: \"RC5\" is not a cipher suite"},
		{"gateway: upstream map of numbers", "tyk.conf", `{"security": {"certificates": {"upstream": {"a": 1}}}}`, "tyk.conf: security.certificates.upstream: a JSON number, want a string"},
		{"gateway: upstream pattern with a scheme", "tyk.conf", `{"security": {"certificates": {"upstream": {"https://a": "` + id1 + `"}}}}`, "tyk.conf: security.certificates.upstream: invalid host pattern"},
		{"gateway: upstream empty value", "tyk.conf", `{"security": {"certificates": {"upstream": {"a": ""}}}}`, "tyk.conf: security.certificates.upstream[\"a\"]: empty value"},
		{"gateway: pin pattern with a path", "tyk.conf", `{"security": {"pinned_public_keys": {"a/b": "sha256//x"}}}`, "tyk.conf: security.pinned_public_keys: invalid host pattern"},
		{"gateway: apis not a list", "tyk.conf", `{"security": {"certificates": {"apis": {"a": "b"}}}}`, "tyk.conf: security.certificates.apis: a JSON object, want an array"},
		{"gateway: negative verify depth", "tyk.conf", `{"mtls": {"verify_depth": -1}}`, "tyk.conf: mtls.verify_depth: -1 is negative"},
		{"gateway: negative admin depth", "tyk.conf", `{"mtls": {"admin_verify_depth": -2}}`, "tyk.conf: mtls.admin_verify_depth: -2 is negative"},
		{"gateway: empty CA path", "tyk.conf", `{"mtls": {"client_cas": [""]}}`, "tyk.conf: mtls.client_cas[0]: empty path"},
		{"gateway: control hostname with a path", "tyk.conf", `{"control_api_hostname": "a/b"}`, "tyk.conf: control_api_hostname:"},
		{"gateway: listen address with a space", "tyk.conf", `{"listen_address": "a b"}`, "tyk.conf: listen_address:"},

		{"api: not JSON", "apps/a.json", `{"api_id": }`, "apps/a.json: line 1, column 12: invalid character '}'"},
		{"api: no api_id", "apps/a.json", `{"proxy": {"listen_path": "/", "target_url": "http://a"}}`, "apps/a.json: api_id: required"},
		{"api: api_id with a space", "apps/a.json", `{"api_id": "a b", "proxy": {"listen_path": "/", "target_url": "http://a"}}`, "apps/a.json: api_id:"},
		{"api: active not a bool", "apps/a.json", `{"api_id": "a", "active": 1}`, "apps/a.json: active: a JSON number, want true or false"},
		{"api: no listen path", "apps/a.json", apiWith(`{"target_url": "http://a"}`), "apps/a.json: proxy.listen_path: required"},
		{"api: relative listen path", "apps/a.json", apiWith(`{"listen_path": "a/", "target_url": "http://a"}`), "apps/a.json: proxy.listen_path: \"a/\" does not start with /"},
		{"api: listen path with parameters", "apps/a.json", apiWith(`{"listen_path": "/a/{id}", "target_url": "http://a"}`), "apps/a.json: proxy.listen_path:"},
		{"api: no target", "apps/a.json", apiWith(`{"listen_path": "/a/"}`), "apps/a.json: proxy.target_url: required"},
		{"api: target not a URL", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "http://a b:x"}`), "apps/a.json: proxy.target_url:"},
		{"api: target of another scheme", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "ftp://a"}`), "apps/a.json: proxy.target_url: \"ftp://a\": the scheme must be http or https"},
		{"api: target without a host", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https:///x"}`), "apps/a.json: proxy.target_url: \"https:///x\" has no host"},
		{"api: target with a bad port", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https://a:0"}`), "apps/a.json: proxy.target_url:"},
		{"api: target with credentials", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https://u:p@a"}`), "apps/a.json: proxy.target_url: credentials"},
		{"api: target_url a number", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": 1}`), "apps/a.json: proxy.target_url: a JSON number, want a string"},
		{"api: skip verify not a bool", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https://a", "transport": {"ssl_insecure_skip_verify": "true"}}`), "apps/a.json: proxy.transport.ssl_insecure_skip_verify: a JSON string, want true or false"},
		{"api: domain with a scheme", "apps/a.json", api(`, "domain": "https://a.com"`), "apps/a.json: domain:"},
		{"api: domain with a port", "apps/a.json", api(`, "domain": "a.com:8443"`), "apps/a.json: domain: \"a.com:8443\": a domain has no port"},
		{"api: domain template", "apps/a.json", api(`, "domain": "{sub}.a.com"`), "apps/a.json: domain: \"{sub}.a.com\": domain templates"},
		{"api: client certificates not a list", "apps/a.json", api(`, "client_certificates": "x"`), "apps/a.json: client_certificates: a JSON string, want an array"},
		{"api: empty client certificate", "apps/a.json", api(`, "client_certificates": [" "]`), "apps/a.json: client_certificates[0]: empty value"},
		{"api: upstream pattern *:PORT", "apps/a.json", api(`, "upstream_certificates": {"*:443": "` + id1 + `"}`), "apps/a.json: upstream_certificates: invalid host pattern"},
		{"api: pins of numbers", "apps/a.json", api(`, "pinned_public_keys": {"a": 1}`), "apps/a.json: pinned_public_keys: a JSON number, want a string"},
		{"api: certificates not a list", "apps/a.json", api(`, "certificates": {}`), "apps/a.json: certificates: a JSON object, want an array"},
		{"api: negative verify depth", "apps/a.json", api(`, "mtls": {"verify_depth": -1}`), "apps/a.json: mtls.verify_depth: -1 is negative"},
		{"api: empty CA path", "apps/a.json", api(`, "mtls": {"upstream_cas": [""]}`), "apps/a.json: mtls.upstream_cas[0]: empty path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if strings.HasSuffix(tc.file, ".conf") {
				_, err = ParseGateway(tc.file, []byte(tc.json))
			} else {
				_, err = ParseAPI(tc.file, []byte(tc.json))
			}
			require.Error(t, err)
			var ce *Error
			require.True(t, errors.As(err, &ce), "%T is not an *Error", err)
			assert.Equal(t, tc.file, ce.File)
			assert.True(t, strings.HasPrefix(err.Error(), tc.want), "error %q\ndoes not start with %q", err, tc.want)
		})
	}
}

// TestWarnings: the fields that change security in Tyk and that are not
// implemented are named; a plain keyless or mTLS API has no warning.
func TestWarnings(t *testing.T) {
	base := `"api_id": "a", "active": true, "proxy": {"listen_path": "/a/", "target_url": "https://up"}`
	for _, tc := range []struct {
		name   string
		fields string
		want   []string // the fields named, in order
	}{
		{"keyless", `"use_keyless": true`, nil},
		{"keyless with mutual TLS", `"use_keyless": true, "use_mutual_tls_auth": true, "client_certificates": ["` + id1 + `"]`, nil},
		{"use_keyless absent", ``, []string{"use_keyless"}},
		{"use_keyless false", `"use_keyless": false`, []string{"use_keyless"}},
		{"auth token with mutual TLS", `"use_keyless": false, "use_standard_auth": true, "use_mutual_tls_auth": true`, []string{"use_standard_auth"}},
		{"basic auth", `"use_basic_auth": true`, []string{"use_basic_auth"}},
		{"OAuth 2.0", `"use_oauth2": true`, []string{"use_oauth2"}},
		{"JWT", `"enable_jwt": true`, []string{"enable_jwt"}},
		{"OpenID", `"use_openid": true`, []string{"use_openid"}},
		{"coprocess", `"enable_coprocess_auth": true`, []string{"enable_coprocess_auth"}},
		{"Go plugin", `"use_go_plugin_auth": true`, []string{"use_go_plugin_auth"}},
		{"HMAC", `"enable_signature_checking": true`, []string{"enable_signature_checking"}},
		{"external OAuth", `"external_oauth": {"enabled": true}`, []string{"external_oauth.enabled"}},
		{"dynamic mTLS", `"use_standard_auth": true, "auth_configs": {"authToken": {"use_certificate": true}}`, []string{"use_standard_auth", "auth_configs.authToken.use_certificate"}},
		{"two modes", `"use_basic_auth": true, "enable_jwt": true`, []string{"use_basic_auth", "enable_jwt"}},
		{"auth modes of a keyless API are not used by Tyk", `"use_keyless": true, "use_basic_auth": true`, nil},
		{"IP allow list", `"use_keyless": true, "enable_ip_whitelisting": true`, []string{"enable_ip_whitelisting"}},
		{"IP block list", `"use_keyless": true, "enable_ip_blacklisting": true`, []string{"enable_ip_blacklisting"}},
		{"endpoint block list", `"use_keyless": true, "version_data": {"versions": {"v1": {"extended_paths": {"black_list": [{"path": "/x"}]}}}}`, []string{"version_data.versions.v1.extended_paths.black_list"}},
		{"upstream TLS version", `"use_keyless": true, "proxy": {"listen_path": "/a/", "target_url": "https://up", "transport": {"ssl_min_version": 772}}`, []string{"proxy.transport.ssl_min_version"}},
		{"internal", `"use_keyless": true, "internal": true`, []string{"internal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := "{" + base
			if tc.fields != "" {
				js += ", " + tc.fields
			}
			a, err := ParseAPI("apps/a.json", []byte(js+"}"))
			require.NoError(t, err)
			var got []string
			for _, w := range a.Warnings {
				rest, ok := strings.CutPrefix(w, "apps/a.json: ")
				require.True(t, ok, "warning %q does not name the file", w)
				field, _, _ := strings.Cut(rest, ": ")
				got = append(got, field)
			}
			assert.Equal(t, tc.want, got, "warnings: %q", a.Warnings)
		})
	}

	g, err := ParseGateway("tyk.conf", []byte(`{"control_api_port": 9696, "security": {"control_api_use_mutual_tls": true},
		"http_server_options": {"use_ssl": true, "certificates": [{"domain_name": "a"}], "min_version": 769}, "proxy_ssl_ciphers": ["x"]}`))
	require.NoError(t, err)
	joined := strings.Join(g.Warnings, "\n")
	for _, f := range []string{"control_api_port", "security.control_api_use_mutual_tls", "http_server_options.certificates",
		"proxy_ssl_ciphers", "http_server_options.min_version"} {
		assert.Contains(t, joined, "tyk.conf: "+f+": ")
	}

	a, err := ParseAPI("apps/a.json", []byte(`{"api_id": "a", "active": true, "use_keyless": true, "domain": "x.com",
		"use_mutual_tls_auth": true, "certificates": ["c.pem"], "proxy": {"listen_path": "/", "target_url": "http://x"}}`))
	require.NoError(t, err)
	plain := &Gateway{File: "tyk.conf"}
	joined = strings.Join(plain.APIWarnings(a), "\n")
	for _, f := range []string{"domain: ignored", "use_mutual_tls_auth: http_server_options.use_ssl is false", "certificates: unused"} {
		assert.Contains(t, joined, "apps/a.json: "+f)
	}
	assert.Equal(t, "", plain.Domain(a), "without enable_custom_domains, as in Tyk")
	assert.Equal(t, "x.com", (&Gateway{EnableCustomDomains: true}).Domain(a))
}

func TestLoadAPIs(t *testing.T) {
	write := func(dir, name, js string) {
		t.Helper()
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(js), 0o600))
	}
	def := func(id, domain, lp string, active bool) string {
		a := "false"
		if active {
			a = "true"
		}
		return `{"api_id": "` + id + `", "active": ` + a + `, "use_keyless": true, "domain": "` + domain +
			`", "proxy": {"listen_path": "` + lp + `", "target_url": "http://up"}}`
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

// TestIsPath: which certificate values are paths to resolve.
func TestIsPath(t *testing.T) {
	for v, want := range map[string]bool{
		"certs/a.pem": true, "a.pem": true, "../a.pem": true, "/abs/a.pem": false,
		id1: false, "org1" + id1: false, strings.ToUpper(id1): false, "AA:BB:CC": false,
		"sha256//abc/def=": false, "SHA256//x/y": false, "-----BEGIN CERTIFICATE-----\nx/y.z": false,
		strings.Repeat("MIIB/a+", 20): false, "plainname": false,
	} {
		assert.Equal(t, want, isPath(v), "isPath(%q)", v)
	}
}
