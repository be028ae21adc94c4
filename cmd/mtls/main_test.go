package main

import (
	"github.com/mtlsgo/mtls/internal/peertest"

	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtlsgo/mtls/mtlstest"
)

// call runs the command in-process and returns its exit status and output.
func call(t *testing.T, envv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return envv[k] })
	return code, out.String(), errb.String()
}

// peer finds a program the test drives: see peertest.Require.
func peer(t *testing.T, name string) string {
	t.Helper()
	return peertest.Require(t, name)
}

type files struct {
	dir                                 string
	leaf                                *mtlstest.Leaf
	certPath, keyPath, pemPath, pubPath string
}

func newFiles(t *testing.T) *files {
	t.Helper()
	ca := mtlstest.MustCA(t, "cli CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "cli", DNSNames: []string{"cli.example"}})
	f := &files{dir: t.TempDir(), leaf: leaf}
	write := func(name string, data []byte) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f.certPath, f.keyPath, f.pemPath = write("cert.pem", leaf.CertPEM), write("key.pem", leaf.KeyPEM), write("both.pem", leaf.PEM())
	return f
}

func TestIDPinInspect(t *testing.T) {
	f := newFiles(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"id", f.certPath}, 0, f.leaf.ID() + "\n"},
		{[]string{"id", f.pemPath}, 0, f.leaf.ID() + "\n"},
		{[]string{"id", f.certPath, "-json"}, 0, `"id": "` + f.leaf.ID() + `"`},
		{[]string{"pin", f.certPath}, 0, f.leaf.Pin() + "\n"},
		{[]string{"inspect", f.certPath}, 0, "dns names    cli.example"},
		{[]string{"inspect", f.pemPath, "-json"}, 0, `"has_private_key": true`},
		{[]string{"id", f.keyPath}, 2, ""},
		{[]string{"id"}, 2, ""},
		{[]string{"id", filepath.Join(f.dir, "missing.pem")}, 2, ""},
		{[]string{"nope"}, 2, ""},
		{[]string{}, 2, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errs := call(t, nil, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errs)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q does not contain %q", out, tc.want)
			}
			if code == 2 && errs == "" {
				t.Error("a failure without a message")
			}
		})
	}
}

// The ID is what openssl prints as the SHA-256 fingerprint, the pin what
// the usual openssl pipeline computes.
func TestAgreesWithOpenSSL(t *testing.T) {
	openssl := peer(t, "openssl")
	f := newFiles(t)
	out, err := exec.Command(openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", f.certPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	_, fp, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	want := strings.ToLower(strings.ReplaceAll(fp, ":", ""))
	if _, got, _ := call(t, nil, "id", f.certPath); got != want+"\n" {
		t.Errorf("id %q, openssl %q", got, want)
	}
	script := openssl + " x509 -pubkey -noout -in " + f.certPath + " | " + openssl + " pkey -pubin -outform der | " +
		openssl + " dgst -sha256 -binary | " + openssl + " base64"
	pin, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, got, _ := call(t, nil, "pin", f.certPath); got != "sha256//"+strings.TrimSpace(string(pin))+"\n" {
		t.Errorf("pin %q, openssl %q", got, pin)
	}
}

// pin https:// prints the leaf's pin, which curl --pinnedpubkey accepts.
func TestPinOfAServerWorksWithCurl(t *testing.T) {
	curl := peer(t, "curl")
	ca := mtlstest.MustCA(t, "pin CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "srv", DNSNames: []string{"localhost"}})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = mtlsServerConfig(leaf)
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "https://localhost:" + port
	code, out, errs := call(t, nil, "pin", url, "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Pin   string
		Chain []struct{ Subject, ID string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Pin != leaf.Pin() || len(got.Chain) == 0 || got.Chain[0].ID != leaf.ID() {
		t.Fatalf("pin %s, chain %+v; want %s and the leaf first", got.Pin, got.Chain, leaf.Pin())
	}
	for pin, want := range map[string]int{got.Pin: 0, "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=": 90} {
		err := exec.Command(curl, "-sk", "--pinnedpubkey", pin, url).Run()
		gotCode := 0
		if ee, ok := err.(*exec.ExitError); ok {
			gotCode = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if gotCode != want {
			t.Errorf("curl --pinnedpubkey %s: exit %d, want %d", pin, gotCode, want)
		}
	}
}

func TestStore(t *testing.T) {
	f := newFiles(t)
	dir := filepath.Join(t.TempDir(), "store")
	env := map[string]string{"MTLS_STORE_SECRET": "cli test secret"}
	code, out, errs := call(t, env, "store", "add", "-dir", dir, f.certPath, f.keyPath)
	if code != 0 || out != f.leaf.ID()+"\n" {
		t.Fatalf("add: exit %d, %q, %s", code, out, errs)
	}
	code, out, _ = call(t, env, "store", "list", "-dir", dir)
	if code != 0 || !strings.HasPrefix(out, f.leaf.ID()) || !strings.Contains(out, "CN=cli") {
		t.Fatalf("list: exit %d, %q", code, out)
	}
	code, out, _ = call(t, env, "store", "show", "-dir", dir, "-json", f.leaf.ID())
	if code != 0 || !strings.Contains(out, `"has_private_key": true`) {
		t.Fatalf("show: exit %d, %q", code, out)
	}
	if code, _, errs := call(t, nil, "store", "add", "-dir", dir, f.pemPath); code != 2 || !strings.Contains(errs, "secret") {
		t.Errorf("add of a key without MTLS_STORE_SECRET: exit %d, %s", code, errs)
	}
	if code, _, _ := call(t, env, "store", "rm", "-dir", dir, f.leaf.ID()); code != 0 {
		t.Errorf("rm: exit %d", code)
	}
	if code, _, errs := call(t, env, "store", "show", "-dir", dir, f.leaf.ID()); code != 2 || !strings.Contains(errs, "not found") {
		t.Errorf("show after rm: exit %d, %s", code, errs)
	}
	if code, _, _ := call(t, env, "store", "list"); code != 2 {
		t.Errorf("list without -dir: exit %d", code)
	}
	if code, _, _ := call(t, env, "store", "frob", "-dir", dir); code != 2 {
		t.Errorf("an unknown subcommand: exit %d", code)
	}
}
