// Command gateway is a Tyk-compatible API gateway built on package mtls: it
// reads Tyk's own tyk.conf and classic API definitions (package tykconf),
// terminates TLS and mutual TLS with an mtls.Server, and proxies each API
// with an httputil.ReverseProxy over the RoundTripper of the API's
// mtls.Selector, which presents each upstream its own client certificate.
//
//	go run ./examples/gateway -conf tyk.conf [-apps DIR]
//
// It serves every active API, routed by domain (when tyk.conf sets
// enable_custom_domains) and listen path, longest first. When it listens it
// prints one line on stdout, "listening on https://ADDR"; it logs each
// request on stderr, with the client certificate's ID and the ID of the
// client certificate presented upstream. Tyk's certificate API
// (/tyk/certs, package certapi) and /tyk/reload are served on the same
// listener, behind the X-Tyk-Authorization header (the secret of tyk.conf)
// and, with mtls.admin_client_cas, a client certificate. /tyk/reload and
// SIGHUP re-read the API definitions; a bad file keeps the previous ones.
//
// A configuration error (a malformed file, a bad value) is printed naming
// the file and the field, and the gateway exits with status 2; other
// failures exit with status 1. See README.md and demo/ for a demonstration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtlsgo/mtls/tykconf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError is a command line that cannot be run.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// exitCode is 2 for a configuration or usage error, 1 for anything else.
func exitCode(err error) int {
	var ce *tykconf.Error
	var ue usageError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return 2
	}
	return 1
}
