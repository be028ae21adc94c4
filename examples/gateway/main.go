// Command gateway is a Tyk-compatible API gateway built on package mtls: it
// reads Tyk's own tyk.conf and classic API definitions (package tykconf),
// terminates TLS and mutual TLS with an mtls.Server, and proxies each API
// with an httputil.ReverseProxy over the RoundTripper of the API's
// mtls.Selector, which presents each upstream its own client certificate.
//
//	go run ./examples/gateway -conf tyk.conf [-apps DIR]
//
// The gateway itself is package
// github.com/mtlsgo/mtls/examples/gateway/gateway (gateway.Run); this
// command only runs it until SIGINT or SIGTERM. The metrics module runs the
// same gateway with a Prometheus collector at /metrics
// (metrics/examples/gateway). See README.md and demo/ for a demonstration.
//
// A configuration error (a malformed file, a bad value) is printed naming
// the file and the field, and the gateway exits with status 2; other
// failures exit with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtlsgo/mtls/examples/gateway/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := gateway.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		os.Exit(gateway.ExitCode(err))
	}
}
