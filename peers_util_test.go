package mtls

// Helpers of the real-peer tests (peers_nginx_test.go, peers_openssl_test.go,
// peers_curl_test.go): other TLS implementations run as child processes on
// loopback, in the test's temporary directory, stopped when the test ends.
// Every wait below polls until a deadline; none is a timing assertion.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// peerBuffer collects a child's output; it is written by the goroutine
// os/exec copies with and read by the test.
type peerBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *peerBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *peerBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// peerProc is a peer running as a child process.
type peerProc struct {
	name   string
	cmd    *exec.Cmd
	stdout peerBuffer
	stderr peerBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // what Wait returned, once done is closed
}

// peerStart starts bin with args in dir. When the test ends the process is
// stopped (SIGTERM, then SIGKILL after a deadline) and, if the test failed,
// its output goes to the test log.
func peerStart(t testing.TB, name, dir, bin string, args ...string) *peerProc {
	t.Helper()
	p := &peerProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			p.log(t)
		}
	})
	return p
}

// stop ends the process and waits for it.
func (p *peerProc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *peerProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// log writes the process's command line and output to the test log.
func (p *peerProc) log(t testing.TB) {
	t.Helper()
	t.Logf("%s: %s (exit: %v)\n--- stdout ---\n%s\n--- stderr ---\n%s",
		p.name, p.cmd.String(), p.exitStatus(), p.stdout.String(), p.stderr.String())
}

func (p *peerProc) exitStatus() string {
	if !p.exited() {
		return "running"
	}
	if p.err == nil {
		return "0"
	}
	return p.err.Error()
}

// peerFreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
// Another process may take it before the peer binds it: callers retry.
func peerFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// errPeerExited: the peer exited while a test waited for it.
var errPeerExited = errors.New("the peer exited")

// peerWaitTLS polls addr until a TLS handshake without a client
// certificate shows want as the server's leaf (which tells our peer from
// another process that took the port), the process exits, or waitFor
// passes.
func peerWaitTLS(p *peerProc, addr, serverName string, want *x509.Certificate) error {
	deadline := time.Now().Add(waitFor)
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s: %w (%s) before it served %s; last dial: %v", p.name, errPeerExited, p.exitStatus(), addr, last)
		}
		if last = peerProbeTLS(addr, serverName, want); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not serving TLS on %s after %v: %v", p.name, addr, waitFor, last)
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func peerProbeTLS(addr, serverName string, want *x509.Certificate) error {
	d := &net.Dialer{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var leaf *x509.Certificate
	cfg := &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // the probe only identifies the server; it checks the leaf itself
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				leaf = cs.PeerCertificates[0]
			}
			return nil
		},
	}
	conn, err := (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", addr)
	if leaf == nil {
		if err == nil {
			err = errors.New("no server certificate")
		}
		return err
	}
	if conn != nil {
		conn.Close()
	}
	if !leaf.Equal(want) {
		return fmt.Errorf("%s presents %q, not the test's certificate %q", addr, leaf.Subject, want.Subject)
	}
	return nil
}

// peerWaitOutput polls the process's stdout until re matches it, and
// returns the submatches.
func peerWaitOutput(p *peerProc, re *regexp.Regexp) ([]string, error) {
	deadline := time.Now().Add(waitFor)
	for {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			return m, nil
		}
		if p.exited() {
			return nil, fmt.Errorf("%s: %w (%s) before printing %q", p.name, errPeerExited, p.exitStatus(), re)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no %q in its output after %v", p.name, re, waitFor)
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// peerWaitStderr polls the process's stderr until it holds s at least n
// times, the process exits, or waitFor passes, and returns how many times it
// holds s then. Output reaches the buffer through a pipe, some time after
// the peer wrote it: anything the peer wrote before it is in the buffer
// once this is.
func peerWaitStderr(p *peerProc, s string, n int) int {
	deadline := time.Now().Add(waitFor)
	for {
		count := strings.Count(p.stderr.String(), s)
		if count >= n || p.exited() || time.Now().After(deadline) {
			return count
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// peerRun runs bin to completion (bounded by waitFor) and returns its
// stdout, stderr and exit code.
func peerRun(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		code = exit.ExitCode()
	default:
		t.Fatalf("%s: %v\nstderr: %s", cmd, err, errOut.String())
	}
	return out.String(), errOut.String(), code
}
