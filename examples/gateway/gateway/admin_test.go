package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// TestGatewayAdminAPI: Tyk's certificate API with curl (add, list, get,
// delete; a wrong or missing secret gets 403), and what each change does
// to the next request of an API whose upstream certificate is a store ID.
func TestGatewayAdminAPI(t *testing.T) {
	requirePeer(t, "curl")
	s := newScenario(t, nil, nil)
	u1b := s.leaves["gw-u1b"]
	u1 := s.leaves["gw-u1"]
	// The store holds gw-u1b before the gateway starts: the vault API maps
	// its upstream to it by ID.
	st, err := mtls.NewFileStore(s.store, []byte("store secret"))
	require.NoError(t, err)
	_, err = st.Add(context.Background(), u1b.PEM())
	require.NoError(t, err)
	require.NoError(t, st.Close())
	s.writeAPI("vault", apiDef("vault", "shared.test", "/vault/", s.up1.URL, obj{
		"upstream_certificates": obj{s.up1.Host: u1b.ID()},
	}))
	s.start(t)

	admin := func(t *testing.T, secret, method, path string, extra ...string) curlResult {
		t.Helper()
		args := []string{"-X", method}
		if secret != "-" {
			args = append(args, "-H", "x-tyk-authorization: "+secret)
		}
		return s.curl(t, "", s.url("shared.test", path), append(args, extra...)...)
	}
	certs := func(t *testing.T) []string {
		t.Helper()
		r := admin(t, s.secret, "GET", "/tyk/certs")
		require.Equal(t, 200, r.status, r.body)
		var l struct{ Certs []string }
		require.NoError(t, json.Unmarshal([]byte(r.body), &l), r.body)
		return l.Certs
	}
	vault := func(t *testing.T, wantStatus int, wantID string) {
		t.Helper()
		seen := len(s.up1.Seen())
		r := s.curl(t, "", s.url("shared.test", "/vault/x"))
		require.Zero(t, r.code, r.stderr)
		require.Equal(t, wantStatus, r.status, r.body)
		var got []string
		for _, c := range s.up1.Seen()[seen:] {
			got = append(got, c.ID)
		}
		if wantID == "" {
			assert.Empty(t, got, "the upstream was reached: the request must fail closed")
			assert.NotContains(t, r.body, "mtls:", "the reason goes to the log, not to the client")
		} else {
			assert.Equal(t, []string{wantID}, got)
		}
	}

	t.Run("a wrong or missing secret: 403", func(t *testing.T) {
		for _, secret := range []string{"-", "", "wrong", s.secret + "x", strings.ToUpper(s.secret)} {
			for _, m := range []string{"GET", "DELETE"} {
				path := "/tyk/certs"
				if m == "DELETE" {
					path += "/" + u1b.ID()
				}
				r := admin(t, secret, m, path)
				require.Zero(t, r.code, r.stderr)
				assert.Equal(t, 403, r.status, "%s with secret %q: %s", m, secret, r.body)
				assert.JSONEq(t, `{"status": "error", "message": "Attempted administrative access with invalid or missing key!"}`, r.body)
			}
		}
		r := admin(t, "wrong", "POST", "/tyk/certs", "--data-binary", "@"+s.file("gw-u1-full.pem"))
		assert.Equal(t, 403, r.status)
		r = admin(t, "wrong", "GET", "/tyk/reload")
		assert.Equal(t, 403, r.status)
		assert.Equal(t, []string{u1b.ID()}, certs(t), "nothing changed")
	})

	t.Run("list, get", func(t *testing.T) {
		vault(t, 200, u1b.ID())
		r := admin(t, s.secret, "GET", "/tyk/certs/"+u1b.ID())
		require.Equal(t, 200, r.status, r.body)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &m))
		assert.Equal(t, u1b.ID(), m["id"])
		assert.Equal(t, true, m["has_private_key"])
		assert.Equal(t, "CN=gw-u1b,O=mtlstest", m["subject"])
		assert.NotContains(t, r.body, "PRIVATE")
	})

	t.Run("add", func(t *testing.T) {
		r := admin(t, s.secret, "POST", "/tyk/certs", "--data-binary", "@"+s.file("gw-u1-full.pem"))
		require.Equal(t, 200, r.status, r.body)
		assert.JSONEq(t, `{"id": "`+u1.ID()+`", "status": "ok", "message": "Certificate added"}`, r.body)
		assert.ElementsMatch(t, []string{u1.ID(), u1b.ID()}, certs(t))
		r = admin(t, s.secret, "GET", "/tyk/certs/"+u1.ID()+","+u1b.ID())
		require.Equal(t, 200, r.status, r.body)
		var metas []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &metas))
		require.Len(t, metas, 2)
		assert.NotContains(t, r.body, "PRIVATE")
		r = admin(t, s.secret, "POST", "/tyk/certs", "--data-binary", "not a certificate")
		assert.Equal(t, 400, r.status, r.body)
	})

	t.Run("delete a mapped certificate: the next request fails closed", func(t *testing.T) {
		r := admin(t, s.secret, "DELETE", "/tyk/certs/"+u1b.ID())
		require.Equal(t, 200, r.status, r.body)
		assert.JSONEq(t, `{"status": "ok", "message": "removed"}`, r.body)
		assert.Equal(t, []string{u1.ID()}, certs(t))
		vault(t, 502, "")
		assert.True(t, s.gw.waitLog(`api=vault GET "/vault/x" status=502`), s.gw.stderr.String())
		line := lastLine(s.gw.stderr.String(), `api=vault GET "/vault/x" status=502`)
		assert.Contains(t, line, "upstream_cert=- (fails closed)")
		assert.Contains(t, line, "error=")
		assert.Contains(t, line, "not found")
		r = admin(t, s.secret, "GET", "/tyk/certs/"+u1b.ID())
		assert.Equal(t, 404, r.status)
	})

	t.Run("a certificate without its key, then the key: replaced", func(t *testing.T) {
		r := admin(t, s.secret, "POST", "/tyk/certs", "--data-binary", "@"+s.file("gw-u1b.pem"))
		require.Equal(t, 200, r.status, r.body)
		vault(t, 502, "")
		assert.True(t, s.gw.waitLog("no private key"), "the log says why")
		r = admin(t, s.secret, "POST", "/tyk/certs", "--data-binary", "@"+s.file("gw-u1b-full.pem"))
		require.Equal(t, 200, r.status, r.body)
		vault(t, 200, u1b.ID())
	})
}

// TestGatewayAdminClientCA: with mtls.admin_client_cas, the certificate
// API also needs a client certificate from those CAs, and answers on
// control_api_hostname only.
func TestGatewayAdminClientCA(t *testing.T) {
	requirePeer(t, "curl")
	s := newScenario(t, nil, nil)
	adminCA := mtlstest.MustCA(t, "admin CA")
	s.leaf("admin", adminCA)
	s.write("admin-ca.pem", adminCA.CertPEM)
	var conf map[string]any
	s.conf = s.jsonFile("tyk.conf", func() obj {
		b := mustRead(t, s.conf)
		require.NoError(t, json.Unmarshal(b, &conf))
		conf["control_api_hostname"] = "admin.test"
		m := conf["mtls"].(map[string]any)
		m["admin_client_cas"] = []string{"admin-ca.pem"}
		return conf
	}())
	s.start(t)
	list := func(cert, host string) curlResult {
		return s.curl(t, cert, s.url(host, "/tyk/certs"), "-H", "x-tyk-authorization: "+s.secret)
	}
	r := list("admin", "admin.test")
	require.Zero(t, r.code, r.stderr)
	assert.Equal(t, 200, r.status, r.body)
	// admin.test has no other API: the TLS level refuses these.
	for _, cert := range []string{"", "alice", "stranger"} {
		r = list(cert, "admin.test")
		assert.NotZero(t, r.code, "the secret with client certificate %q got through: %d %s", cert, r.status, r.body)
	}
	r = list("admin", "shared.test")
	assert.Equal(t, 404, r.status, "not on another domain: %s", r.body)
	r = s.curl(t, "alice", s.url("shared.test", "/billing/x"))
	assert.Equal(t, 200, r.status, "the APIs still work: %s", r.body)
}

func lastLine(log, substr string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return lines[i]
		}
	}
	return ""
}
