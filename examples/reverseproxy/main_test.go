package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mtlsgo/mtls/mtlstest"
)

var header = regexp.MustCompile(`^proxy (http://127\.0\.0\.1:\d+); upstreams on ports (\d+) \(/billing, /orders\), (\d+) \(/payments, /ledger\), (\d+) \(/legacy\)$`)

// tourLines are the lines of the tour after the header, in order, with
// single spaces; API, PAY and OLD stand for the upstreams' ports.
var tourLines = []struct {
	name string
	line string
}{
	{"first name, first certificate",
		`/billing https://localhost:API presented billing-client (Certificates["localhost"]) 200 OK`},
	{"same upstream, second name, second certificate",
		`/orders https://127.0.0.1:API presented orders-client (Certificates["127.0.0.1"]) 200 OK`},
	{"pinned to its key",
		`/payments https://localhost:PAY presented billing-client (Certificates["localhost"]) 200 OK: upstream key matches PinnedPublicKeys["localhost:PAY"]`},
	{"pinned to another key",
		`/ledger https://127.0.0.1:PAY presented nothing 502 Bad Gateway (mtls.ErrPinMismatch): upstream key not in PinnedPublicKeys["127.0.0.1:PAY"], handshake aborted`},
	{"exact host beats the name",
		`/legacy https://127.0.0.1:OLD presented legacy-client (Certificates["127.0.0.1:OLD"]) 200 OK`},
	{"certificate deleted",
		`store.Delete(legacy-client), the certificate of Certificates["127.0.0.1:OLD"]`},
	{"fails closed",
		`/legacy https://127.0.0.1:OLD presented nothing 502 Bad Gateway (mtls.ErrNotFound): failed closed, no connection made`},
}

// checkTour checks the header and tour lines at the start of lines, and
// returns the proxy's URL and the lines after the tour.
func checkTour(t *testing.T, lines []string) (proxyURL string, rest []string) {
	t.Helper()
	if len(lines) < 1+len(tourLines) {
		t.Fatalf("%d lines, want at least %d:\n%s", len(lines), 1+len(tourLines), strings.Join(lines, "\n"))
	}
	m := header.FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("first line %q, want %s", lines[0], header)
	}
	ports := strings.NewReplacer("API", m[2], "PAY", m[3], "OLD", m[4])
	for i, tt := range tourLines {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(strings.Fields(lines[1+i]), " ")
			if want := ports.Replace(tt.line); got != want {
				t.Errorf("line %d:\n got %s\nwant %s", 1+i, got, want)
			}
		})
	}
	return m[1], lines[1+len(tourLines):]
}

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	_, rest := checkTour(t, strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"))
	if len(rest) != 0 {
		t.Errorf("lines after the tour: %q", rest)
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := serve(ctx, pw)
		pw.Close()
		done <- err
	}()

	// The tour, then the curl commands, then the prompt.
	var lines []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() && sc.Text() != "Press Ctrl-C to stop." {
		lines = append(lines, sc.Text())
	}
	if sc.Err() != nil || len(lines) == 0 {
		t.Fatalf("serve ended early (%v), output:\n%s\nerror: %v", sc.Err(), strings.Join(lines, "\n"), <-done)
	}
	proxyURL, rest := checkTour(t, lines)

	// The proxy still runs, and answers the curl commands it printed as the
	// tour ended: the legacy certificate is gone.
	tests := []struct {
		path       string
		wantStatus int
		wantError  string // the errorHeader
	}{
		{"/billing", http.StatusOK, ""},
		{"/orders", http.StatusOK, ""},
		{"/payments", http.StatusOK, ""},
		{"/ledger", http.StatusBadGateway, "mtls.ErrPinMismatch"},
		{"/legacy", http.StatusBadGateway, "mtls.ErrNotFound"},
	}
	var curls []string
	for _, l := range rest {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(l), "curl -i "); ok {
			curls = append(curls, cmd)
		}
	}
	if len(curls) != len(tests) {
		t.Fatalf("curl commands %q, want %d", curls, len(tests))
	}
	for i, tt := range tests {
		t.Run("curl "+tt.path, func(t *testing.T) {
			if want := proxyURL + tt.path; curls[i] != want {
				t.Fatalf("curl -i %s, want curl -i %s", curls[i], want)
			}
			resp, err := http.Get(curls[i])
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			gotCert := resp.Header.Get(mtlstest.ClientCertHeader)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get(errorHeader) != tt.wantError ||
				(gotCert != "") != (tt.wantStatus == http.StatusOK) {
				t.Errorf("%s, %s: %q, %s: %q; want %d, %q, a certificate: %v", resp.Status,
					errorHeader, resp.Header.Get(errorHeader), mtlstest.ClientCertHeader, gotCert,
					tt.wantStatus, tt.wantError, tt.wantStatus == http.StatusOK)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
