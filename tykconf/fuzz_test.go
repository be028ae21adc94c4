package tykconf

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseGateway: ParseGateway never panics, and every error is an
// *Error that names the file.
func FuzzParseGateway(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"listen_port": 8443, "secret": "x", "app_path": "apps"}`,
		`{"http_server_options": {"use_ssl": true, "ssl_certificates": ["a.pem"], "min_version": 771, "ssl_ciphers": ["TLS_AES_128_GCM_SHA256"]}}`,
		`{"security": {"certificates": {"upstream": {"*.a.com": "a.pem", "b:8443": "` + id1 + `"}, "apis": ["x"]}, "pinned_public_keys": {"*": "sha256//AAAA,a.pem"}}}`,
		`{"mtls": {"store_dir": "s", "client_cas": ["c.pem"], "verify_depth": 2, "admin_client_cas": ["a.pem"]}}`,
		`{"listen_port": "x"}`, `[`, `null`, `{"control_api_hostname": "*.x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGateway("conf/tyk.conf", data)
		checkFuzzError(t, err)
		if err == nil {
			_ = g.Warnings
		}
	})
}

// FuzzParseAPI: ParseAPI never panics, and every error is an *Error that
// names the file; an API it accepts has a target URL and a listen path.
func FuzzParseAPI(f *testing.F) {
	for _, s := range []string{
		`{"api_id": "a", "active": true, "use_keyless": true, "proxy": {"listen_path": "/a/", "target_url": "https://up:8443/x", "strip_listen_path": true}}`,
		`{"api_id": "a", "domain": "api.example.com", "proxy": {"listen_path": "/", "target_url": "http://[::1]:80"},
		  "use_mutual_tls_auth": true, "client_certificates": ["c.pem"], "upstream_certificates": {"[::1]:80": "x.pem"},
		  "pinned_public_keys": {"*": "sha256//AA"}, "certificates": ["s.pem"], "mtls": {"verify_depth": 1}}`,
		`{"api_id": "a", "use_basic_auth": true, "auth_configs": {"x": {"use_certificate": true}}, "version_data": {"versions": {"v": {"paths": {"black_list": ["/x"]}}}}}`,
		`{"api_id": "a", "definition": {"location": "header", "key": "v"}, "version_data": {"not_versioned": false, "versions": {"v1": {"expires": "2001-01-01 00:00",
		  "extended_paths": {"internal": [{"path": "/x"}]}}}}, "custom_middleware": {"pre": [{"name": "p"}], "response": [{"name": "r", "disabled": true}]},
		  "custom_middleware_bundle": "b.zip"}`,
		`{"api_id": 1}`, `{"proxy": []}`, `{"api_id": "a", "proxy": {"listen_path": "/", "target_url": "https://a:"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAPI("apps/fuzz.json", data)
		checkFuzzError(t, err)
		if err == nil {
			if a.TargetURL == nil || !strings.HasPrefix(a.ListenPath, "/") || a.APIID == "" {
				t.Fatalf("accepted an API without a target, listen path or api_id: %+v", a)
			}
			if _, err := a.Policy(); err != nil && !strings.HasPrefix(err.Error(), "apps/fuzz.json: ") {
				t.Fatalf("Policy error does not name the file: %v", err)
			}
		}
	})
}

func checkFuzzError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("%T is not an *Error: %v", err, err)
	}
	if !strings.HasPrefix(err.Error(), ce.File+": ") || (ce.File != "conf/tyk.conf" && ce.File != "apps/fuzz.json") {
		t.Fatalf("the error does not name the file: %v", err)
	}
}
