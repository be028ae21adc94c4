package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
)

// tykDir writes a Tyk configuration: the gateway maps *.example.com to
// gw.pem, API a1 maps a.example.com to a.pem (which expires in 10 days),
// and pins b.example.com.
func tykDir(t *testing.T) (conf string, gw, api *mtlstest.Leaf) {
	t.Helper()
	ca := mtlstest.MustCA(t, "resolve CA")
	gw = ca.MustIssue(t, mtlstest.Options{CommonName: "gw client"})
	api = ca.MustIssue(t, mtlstest.Options{CommonName: "api client", NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("gw.pem", string(gw.PEM()))
	write("a.pem", string(api.PEM()))
	conf = write("tyk.conf", `{"listen_port": 0, "app_path": "apps",
		"security": {"certificates": {"upstream": {"*.example.com": "gw.pem"}},
		             "pinned_public_keys": {"b.example.com": "`+gw.Pin()+`"}}}`)
	write("apps/a.json", `{"api_id": "a1", "name": "A", "active": true, "use_keyless": true,
		"proxy": {"listen_path": "/a/", "target_url": "https://a.example.com"},
		"upstream_certificates": {"a.example.com": "../a.pem"}}`)
	return conf, gw, api
}

func TestResolve(t *testing.T) {
	conf, gw, api := tykDir(t)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"resolve", "-conf", conf, "x.example.com"}, 0, []string{"host x.example.com:443",
			"client certificate: " + gw.ID(), `chosen by "*.example.com" at the gateway level`, `* 3. gateway level, specific: "*.example.com"`, "pins: none"}},
		{[]string{"resolve", "-conf", conf, "-api", "a1", "a.example.com:443"}, 0, []string{"client certificate: " + api.ID(),
			`* 1. api level, specific:`, `  3. gateway level, specific: "*.example.com"`}},
		{[]string{"resolve", "-conf", conf, "b.example.com"}, 0, []string{"pins: " + gw.Pin(), `chosen by "b.example.com"`}},
		{[]string{"resolve", "-conf", conf, "other.org"}, 0, []string{"client certificate: none"}},
		{[]string{"resolve", "-conf", conf, "-json", "x.example.com"}, 0, []string{`"id": "` + gw.ID() + `"`, `"pattern": "*.example.com"`}},
		{[]string{"resolve", "-conf", conf, "-api", "nope", "x.example.com"}, 2, nil},
		{[]string{"resolve", "x.example.com"}, 2, nil},
		{[]string{"resolve", "-conf", conf, "::1"}, 2, nil},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			code, out, errs := call(t, nil, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	conf, _, api := tykDir(t)
	code, out, errs := call(t, nil, "check", "-conf", conf)
	if code != 1 || !strings.Contains(out, "expires") || !strings.Contains(out, api.Cert.Subject.String()) {
		t.Fatalf("check with a certificate expiring in 10 days: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := call(t, nil, "check", "-conf", conf, "-within", "1h"); code != 0 || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("check -within 1h: exit %d\n%s", code, out)
	}
	if err := os.Remove(filepath.Join(filepath.Dir(conf), "gw.pem")); err != nil {
		t.Fatal(err)
	}
	code, out, _ = call(t, nil, "check", "-conf", conf, "-within", "1h", "-json")
	if code != 1 || !strings.Contains(out, `"what": "missing or unreadable"`) || !strings.Contains(out, `"pattern": "*.example.com"`) {
		t.Fatalf("check with a missing file: exit %d\n%s", code, out)
	}
	code, _, _ = call(t, nil, "resolve", "-conf", conf, "x.example.com")
	if code != 1 {
		t.Errorf("resolve with a missing file: exit %d, want 1 (the policy cannot be used)", code)
	}
}
