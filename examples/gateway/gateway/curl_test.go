package gateway

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// curlResult is what one curl run gave.
type curlResult struct {
	body   string
	status int // 0 when no response
	code   int // curl's exit status
	stderr string
}

// curl runs curl against the scenario's gateway as client cert (""
// for none), trusting the gateway's CA, with every test name resolved to
// 127.0.0.1.
func (s *scenario) curl(t *testing.T, cert, url string, extra ...string) curlResult {
	t.Helper()
	bin := requirePeer(t, "curl")
	args := []string{"-q", "--silent", "--show-error", "--noproxy", "*", "--max-time", "20",
		"--cacert", s.file("server-ca.pem"), "--write-out", "\n@@status=%{http_code}"}
	for _, h := range []string{"shared.test", "solo.test", "admin.test", "localhost"} {
		args = append(args, "--resolve", h+":"+s.gw.port+":127.0.0.1")
	}
	if cert != "" {
		args = append(args, "--cert", s.file(cert+".pem"), "--key", s.file(cert+"-key.pem"))
	}
	args = append(append(args, extra...), url)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var r curlResult
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s: %v\n%s", cmd, err, errOut.String())
	}
	body, st, _ := strings.Cut(out.String(), "\n@@status=")
	r.body, r.stderr = body, errOut.String()
	r.status, _ = strconv.Atoi(strings.TrimSpace(st))
	return r
}

// TestGatewayCurl: curl as the client, with, without and with a wrong
// client certificate, across two APIs on one domain (the HTTP level
// decides: 403) and an API alone on its domain (the TLS level decides: the
// handshake fails); each upstream takes only its own client certificate
// and says which it saw.
func TestGatewayCurl(t *testing.T) {
	requirePeer(t, "curl")
	s := newScenario(t, nil, nil)
	s.start(t)
	u1, u1b, u2 := s.leaves["gw-u1"].ID(), s.leaves["gw-u1b"].ID(), s.leaves["gw-u2"].ID()
	for _, tc := range []struct {
		name, cert, host, path string
		status                 int    // 0: the handshake fails
		upstreamSaw            string // the client certificate the upstream saw
		body                   string // in the body
	}{
		{"billing with alice", "alice", "shared.test", "/billing/invoices/7", 200, u1, "upstream=up1 path=/b/invoices/7"},
		{"orders with bob", "bob", "shared.test", "/orders/1", 200, u2, "upstream=up2 path=/1"},
		{"orders with alice: not allowed", "alice", "shared.test", "/orders/1", 403, "", "not allowed"},
		{"billing with bob: not allowed", "bob", "shared.test", "/billing/", 403, "", "not allowed"},
		{"billing without a certificate", "", "shared.test", "/billing/", 403, "", "no client certificate"},
		{"billing with a certificate of another CA", "stranger", "shared.test", "/billing/", 403, "", "does not chain"},
		{"billing with mallory: of the CA, not listed", "mallory", "shared.test", "/billing/", 403, "", "not allowed"},
		{"billing with ops (security.certificates.apis)", "ops", "shared.test", "/billing/x", 200, u1, "path=/b/x"},
		{"orders with ops", "ops", "shared.test", "/orders/x", 200, u2, "path=/x"},
		{"reports with alice, alone on its domain", "alice", "solo.test", "/reports/r", 200, u1b, "upstream=up1 path=/r"},
		{"reports with bob: refused in the handshake", "bob", "solo.test", "/reports/r", 0, "", ""},
		{"reports without a certificate: refused in the handshake", "", "solo.test", "/reports/r", 0, "", ""},
		{"reports with a stranger: refused in the handshake", "stranger", "solo.test", "/reports/r", 0, "", ""},
		{"public without a certificate", "", "shared.test", "/public/p", 200, u2, "upstream=up2 path=/p"},
		{"public on the other domain: solo.test requires a certificate", "", "solo.test", "/public/p", 0, "", ""},
		{"public on the other domain: not there", "alice", "solo.test", "/public/p", 404, "", "Not Found"},
		{"by IP, no SNI: the default certificate, no API", "", "127.0.0.1", "/public/ip", 404, "", "Not Found"},
		{"no API on the path", "alice", "shared.test", "/nothing/", 404, "", "Not Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen1, seen2 := len(s.up1.Seen()), len(s.up2.Seen())
			r := s.curl(t, tc.cert, s.url(tc.host, tc.path))
			if tc.status == 0 {
				require.NotZero(t, r.code, "curl got through (status %d): %s", r.status, r.body)
				t.Logf("curl exit %d: %s", r.code, strings.TrimSpace(r.stderr))
			} else {
				require.Zero(t, r.code, "curl: %s", r.stderr)
				require.Equal(t, tc.status, r.status, r.body)
				assert.Contains(t, r.body, tc.body)
			}
			var got []string
			for _, c := range s.up1.Seen()[seen1:] {
				got = append(got, c.ID)
			}
			for _, c := range s.up2.Seen()[seen2:] {
				got = append(got, c.ID)
			}
			if tc.upstreamSaw == "" {
				assert.Empty(t, got, "an upstream was reached")
			} else {
				assert.Equal(t, []string{tc.upstreamSaw}, got, "what the upstreams saw")
			}
		})
	}

	t.Run("Host and SNI differ: 421", func(t *testing.T) {
		r := s.curl(t, "alice", s.url("solo.test", "/billing/x"), "-H", "Host: shared.test")
		require.Zero(t, r.code, r.stderr)
		assert.Equal(t, 421, r.status, r.body)
	})

	t.Run("the request log names both certificates", func(t *testing.T) {
		alice := s.leaves["alice"].ID()
		assert.True(t, s.gw.waitLog(`api=billing GET "/billing/invoices/7" status=200 client=`+alice+" upstream="+s.up1.Host+" upstream_cert="+u1),
			"no such line in:\n%s", s.gw.stderr.String())
		assert.True(t, s.gw.waitLog(`api=orders GET "/orders/1" status=403 client=`+alice+"(unverified)"))
		assert.True(t, s.gw.waitLog(`api=public GET "/public/p" status=200 client=- upstream=`+s.up2.Host+" upstream_cert="+u2))
	})
}
