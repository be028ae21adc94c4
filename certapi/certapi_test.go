package certapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// getOnly hides a store's Metadata method: the handler then uses Get.
type getOnly struct{ mtls.CertStore }

func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"), "%s %s", method, path)
		assert.True(t, json.Valid(rec.Body.Bytes()), "%s %s: not JSON: %s", method, path, rec.Body)
	}
	return rec.Code, rec.Body.String()
}

func TestHandler(t *testing.T) {
	ca := mtlstest.MustCA(t, "certapi CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "svc", DNSNames: []string{"svc.example.com"}})
	other := ca.MustIssue(t, mtlstest.Options{CommonName: "other"})
	for name, mk := range map[string]func() mtls.CertStore{
		"MemoryStore (Metadata)": func() mtls.CertStore { return mtls.NewMemoryStore([]byte("secret")) },
		"FileStore (Metadata)": func() mtls.CertStore {
			s, err := mtls.NewFileStore(t.TempDir(), []byte("secret"))
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		},
		"a store with Get only": func() mtls.CertStore { return getOnly{mtls.NewMemoryStore([]byte("secret"))} },
	} {
		t.Run(name, func(t *testing.T) {
			h := New(mk())
			code, body := do(t, h, "GET", "/tyk/certs", "")
			require.Equal(t, 200, code)
			assert.JSONEq(t, `{"certs": []}`, body)

			code, body = do(t, h, "POST", "/tyk/certs", string(leaf.PEM()))
			require.Equal(t, 200, code, body)
			assert.JSONEq(t, `{"id": "`+leaf.ID()+`", "status": "ok", "message": "Certificate added"}`, body)
			assert.NotContains(t, body, "PRIVATE")
			code, body = do(t, h, "POST", "/tyk/certs", string(other.CertPEM))
			require.Equal(t, 200, code, body)

			code, body = do(t, h, "GET", "/tyk/certs", "")
			require.Equal(t, 200, code)
			var list struct{ Certs []string }
			require.NoError(t, json.Unmarshal([]byte(body), &list))
			assert.ElementsMatch(t, []string{leaf.ID(), other.ID()}, list.Certs)

			code, body = do(t, h, "GET", "/tyk/certs/"+leaf.ID(), "")
			require.Equal(t, 200, code, body)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(body), &m))
			for _, k := range []string{"id", "fingerprint", "has_private_key", "has_private", "issuer", "subject", "not_before", "not_after", "dns_names", "is_ca"} {
				assert.Contains(t, m, k)
			}
			assert.Equal(t, leaf.ID(), m["id"])
			assert.Equal(t, true, m["has_private_key"])
			assert.Equal(t, true, m["has_private"])
			assert.Equal(t, "CN=svc,O=mtlstest", m["subject"])
			assert.Equal(t, []any{"svc.example.com"}, m["dns_names"])
			assert.NotContains(t, body, "PRIVATE KEY")

			code, body = do(t, h, "GET", "/tyk/certs/"+leaf.ID()+","+other.ID(), "")
			require.Equal(t, 200, code, body)
			var metas []Meta
			require.NoError(t, json.Unmarshal([]byte(body), &metas))
			require.Len(t, metas, 2)
			assert.Equal(t, leaf.ID(), metas[0].ID)
			assert.Equal(t, other.ID(), metas[1].ID)
			assert.False(t, metas[1].HasPrivateKey)

			code, body = do(t, h, "GET", "/tyk/certs?mode=detailed", "")
			require.Equal(t, 200, code)
			assert.Contains(t, body, `"fingerprint"`)

			code, body = do(t, h, "DELETE", "/tyk/certs/"+other.ID(), "")
			require.Equal(t, 200, code, body)
			assert.JSONEq(t, `{"status": "ok", "message": "removed"}`, body)
			code, body = do(t, h, "GET", "/tyk/certs/"+other.ID(), "")
			assert.Equal(t, 404, code, body)
			assert.Contains(t, body, `"status":"error"`)
			code, _ = do(t, h, "GET", "/tyk/certs/"+leaf.ID()+","+other.ID(), "")
			assert.Equal(t, 404, code, "one of the IDs is unknown")
			code, _ = do(t, h, "DELETE", "/tyk/certs/"+other.ID(), "")
			assert.Equal(t, 404, code)
		})
	}
}

func TestHandlerErrors(t *testing.T) {
	ca := mtlstest.MustCA(t, "certapi CA")
	leaf := ca.MustIssue(t, mtlstest.Options{})
	expired := ca.MustIssue(t, mtlstest.Options{NotBefore: leaf.Cert.NotBefore.AddDate(0, 0, -10), NotAfter: leaf.Cert.NotBefore.AddDate(0, 0, -5)})
	h := New(mtls.NewMemoryStore(nil)) // no secret: keys are refused
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"garbage", "POST", "/tyk/certs", "not PEM", 400, "PEM"},
		{"a key without a secret", "POST", "/tyk/certs", string(leaf.PEM()), 400, ""},
		{"a key alone", "POST", "/tyk/certs", string(leaf.KeyPEM), 400, ""},
		{"an expired certificate", "POST", "/tyk/certs", string(expired.CertPEM), 400, "expired"},
		{"too big", "POST", "/tyk/certs", strings.Repeat("a", MaxBody+1), 413, "limit"},
		{"unknown ID", "GET", "/tyk/certs/" + leaf.ID(), "", 404, "not found"},
		{"not an ID", "GET", "/tyk/certs/xyz", "", 404, ""},
		{"delete unknown", "DELETE", "/tyk/certs/" + leaf.ID(), "", 404, ""},
		{"delete two", "DELETE", "/tyk/certs/a,b", "", 400, "one"},
		{"delete the list", "DELETE", "/tyk/certs", "", 405, "not allowed"},
		{"put", "PUT", "/tyk/certs/" + leaf.ID(), "", 405, "not allowed"},
		{"deeper path", "GET", "/tyk/certs/a/b", "", 404, ""},
		{"another path", "GET", "/tyk/certsx", "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, h, tc.method, tc.path, tc.body)
			assert.Equal(t, tc.code, code, body)
			var st Status
			require.NoError(t, json.Unmarshal([]byte(body), &st))
			assert.Equal(t, "error", st.Status)
			assert.Contains(t, st.Message, tc.msg)
			assert.NotContains(t, body, "PRIVATE KEY")
			assert.NotContains(t, body, string(leaf.KeyPEM[30:60]))
		})
	}
}

func TestRequireSecret(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { Error(w, http.StatusTeapot, "through") })
	h := RequireSecret("s3cret", ok)
	code, _ := do(t, h, "GET", "/", "", "X-Tyk-Authorization", "s3cret")
	assert.Equal(t, http.StatusTeapot, code)
	code, _ = do(t, h, "GET", "/", "", "x-tyk-authorization", "s3cret")
	assert.Equal(t, http.StatusTeapot, code, "header names are case-insensitive")
	for _, v := range []string{"", "s3cre", "s3cret ", "S3CRET"} {
		code, body := do(t, h, "GET", "/", "", "X-Tyk-Authorization", v)
		assert.Equal(t, 403, code, "secret %q", v)
		assert.Contains(t, body, "invalid or missing key")
	}
	code, _ = do(t, h, "GET", "/", "")
	assert.Equal(t, 403, code, "no header")
	off := RequireSecret("", ok)
	code, _ = do(t, off, "GET", "/", "", "X-Tyk-Authorization", "")
	assert.Equal(t, 404, code, "no secret: the API is off")
}

// TestHandlerOverHTTP: the handler on a real server, with a body read
// through the network.
func TestHandlerOverHTTP(t *testing.T) {
	ca := mtlstest.MustCA(t, "certapi CA")
	leaf := ca.MustIssue(t, mtlstest.Options{})
	store := mtls.NewMemoryStore([]byte("secret"))
	mux := http.NewServeMux()
	h := New(store)
	mux.Handle(Path, RequireSecret("k", h))
	mux.Handle(Path+"/", RequireSecret("k", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/tyk/certs", strings.NewReader(string(leaf.PEM())))
	req.Header.Set(Header, "k")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(body))
	_, err = store.Get(context.Background(), leaf.ID())
	require.NoError(t, err)
}
