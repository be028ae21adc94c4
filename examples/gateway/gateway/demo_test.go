package gateway

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo: the demo's files as shipped, with certificates from mkcerts,
// start a gateway (on a port of its own, and without the demo upstreams,
// whose ports are fixed): the clients' certificates get the answers the
// README shows, 502 standing for the upstream that is not running.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "run", "../demo/mkcerts", "-dir", filepath.Join(dir, "certs")).CombinedOutput()
	require.NoError(t, err, "mkcerts: %s", out)
	var conf map[string]any
	require.NoError(t, json.Unmarshal(mustRead(t, filepath.Join("..", "demo", "tyk.conf")), &conf))
	conf["listen_port"] = 0
	b, err := json.Marshal(conf)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tyk.conf"), b, 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "apps"), 0o700))
	for _, f := range []string{"billing.json", "orders.json"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "apps", f), mustRead(t, filepath.Join("..", "demo", "apps", f)), 0o600))
	}
	gw := startGateway(t, "-conf", filepath.Join(dir, "tyk.conf"))

	p := &pki{t: t, dir: filepath.Join(dir, "certs")}
	s := &scenario{pki: p, gw: gw}
	for _, tc := range []struct {
		cert, path string
		status     int
	}{
		{"alice", "/billing/invoices", 502}, // through to the upstream, which is not running here
		{"bob", "/orders/1", 502},
		{"ops", "/orders/1", 502},
		{"alice", "/orders/1", 403},
		{"mallory", "/billing/x", 403},
		{"stranger", "/billing/x", 403},
		{"", "/billing/x", 403},
	} {
		r := s.curlDemo(t, tc.cert, "https://api.localhost:"+gw.port+tc.path)
		assert.Equal(t, tc.status, r.status, "%s %s: %s %s", tc.cert, tc.path, r.body, r.stderr)
	}
	r := s.curlDemo(t, "", "https://api.localhost:"+gw.port+"/tyk/certs", "-H", "x-tyk-authorization: demo-admin-secret")
	assert.Equal(t, 200, r.status, r.body)
}

// curlDemo is curl with the demo's file names: NAME.pem and NAME-key.pem.
func (s *scenario) curlDemo(t *testing.T, cert, url string, extra ...string) curlResult {
	t.Helper()
	args := []string{"--resolve", "api.localhost:" + s.gw.port + ":127.0.0.1"}
	return s.curl(t, cert, url, append(args, extra...)...)
}
