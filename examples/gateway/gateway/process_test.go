package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildGateway builds the gateway program (examples/gateway, the command
// that runs this package) into a temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to build the gateway with")
		}
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/mtlsgo/mtls/examples/gateway").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// TestGatewayProcess runs the built program: it prints exactly one line on
// stdout when it listens, serves, reloads on SIGHUP, and exits with status
// 0 on SIGTERM.
func TestGatewayProcess(t *testing.T) {
	bin := buildGateway(t)
	s := newScenario(t, nil, nil)
	cmd := exec.Command(bin, "-conf", s.conf)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	var rest []byte
	lineCh := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		lineCh <- line
		rest, _ = io.ReadAll(br)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	var line string
	select {
	case line = <-lineCh:
	case <-time.After(waitFor):
		t.Fatalf("no line on stdout after %v; stderr:\n%s", waitFor, stderr.String())
	}
	m := regexp.MustCompile(`^listening on https://(127\.0\.0\.1:(\d+))\n$`).FindStringSubmatch(line)
	require.NotNil(t, m, "first line %q", line)
	s.gw = &running{addr: m[1], port: m[2], stderr: &stderr}

	c := s.client(s.gw, s.leaves["alice"])
	status, body, err := get(c, s.url("shared.test", "/billing/x"))
	require.NoError(t, err)
	assert.Equal(t, 200, status, body)
	status, _, err = get(c, s.url("shared.test", "/extra/x"))
	require.NoError(t, err)
	assert.Equal(t, 404, status)

	s.writeAPI("extra", apiDef("extra", "shared.test", "/extra/", s.up2.URL, nil))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	deadline := time.Now().Add(waitFor)
	for status != 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		status, _, err = get(c, s.url("shared.test", "/extra/x"))
		require.NoError(t, err)
	}
	assert.Equal(t, 200, status, "SIGHUP did not load the new API")
	assert.Contains(t, stderr.String(), "SIGHUP: reloading")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		assert.NoError(t, err, "exit status after SIGTERM")
	case <-time.After(waitFor):
		t.Fatal("the gateway did not exit after SIGTERM")
	}
	assert.Empty(t, string(rest), "stdout holds one line only")
}

// TestGatewayProcessBadConfig: a malformed file or a bad value exits with
// status 2 and a message naming the file and the field.
func TestGatewayProcessBadConfig(t *testing.T) {
	bin := buildGateway(t)
	for _, tc := range []struct {
		name  string
		setup func(s *scenario) []string // the arguments
		want  string                     // in stderr, after the directory
	}{
		{"tyk.conf not JSON", func(s *scenario) []string {
			return []string{"-conf", s.write("bad.conf", []byte("{"))}
		}, "bad.conf: line 1, column 1: unexpected end of JSON input"},
		{"a bad value in tyk.conf", func(s *scenario) []string {
			return []string{"-conf", s.write("bad.conf", []byte(`{"listen_port": 99999, "app_path": "apps"}`))}
		}, "bad.conf: listen_port: 99999 is not a port"},
		{"a bad API definition", func(s *scenario) []string {
			s.writeAPI("billing", apiDef("billing", "shared.test", "/billing/", "gopher://x", nil))
			return []string{"-conf", s.conf}
		}, filepath.Join("apps", "billing.json") + ": proxy.target_url: \"gopher://x\": the scheme must be http or https"},
		{"a missing certificate file", func(s *scenario) []string {
			def := s.apiDefs["billing"]
			def["upstream_certificates"] = obj{"*": "../none.pem"}
			s.writeAPI("billing", def)
			return []string{"-conf", s.conf}
		}, filepath.Join("apps", "billing.json") + `: upstream_certificates["*"]: `},
		{"no tyk.conf", func(s *scenario) []string {
			return []string{"-conf", filepath.Join(s.dir, "none.conf")}
		}, "none.conf: no such file or directory"},
		{"an unknown flag", func(s *scenario) []string { return []string{"-nope"} }, "flag provided but not defined: -nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScenario(t, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.setup(s)...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "%v; stderr:\n%s", err, stderr.String())
			assert.Equal(t, 2, exit.ExitCode(), stderr.String())
			assert.Contains(t, stderr.String(), tc.want)
			assert.Empty(t, stdout.String(), "nothing on stdout: the gateway never listened")
		})
	}
}

// TestExitCode: configuration and usage errors are status 2.
func TestExitCode(t *testing.T) {
	s := newScenario(t, nil, nil)
	err := Run(context.Background(), []string{"-conf", s.write("x.conf", []byte(`{"listen_port": "a"}`))}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Equal(t, 2, ExitCode(err))
	assert.Equal(t, 2, ExitCode(Run(context.Background(), []string{"extra"}, io.Discard, io.Discard)))
	assert.Equal(t, 1, ExitCode(errors.New("listen: address in use")))
	assert.Equal(t, 1, ExitCode(http.ErrServerClosed))
}
