// Command gateway is the Tyk-compatible gateway of the mtls module
// (examples/gateway, package github.com/mtlsgo/mtls/examples/gateway/gateway)
// with a metrics.Collector: the gateway's selectors (every API's derives
// from the gateway-level one and shares its hook) and its server feed the
// collector's counters through their event hooks, and the expiry gauges
// read their inventories when Prometheus scrapes.
//
//	cd metrics && go run ./examples/gateway -conf ../examples/gateway/demo/tyk.conf
//
// It takes the flags of examples/gateway (-conf, -apps). /metrics is served
// on the admin side of the gateway's own listener, as /tyk/certs is: over
// its TLS, behind the X-Tyk-Authorization secret of tyk.conf (no secret:
// 404), with mtls.admin_client_cas a client certificate from those CAs, and
// on control_api_hostname only when it is set. The metrics name
// certificates, subjects, APIs and upstream hosts, which are the gateway
// operator's to see, not every client's. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/examples/gateway/gateway"
	"github.com/mtlsgo/mtls/metrics"
)

// MetricsPath is where the metrics are served, on the admin side.
const MetricsPath = "/metrics"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		os.Exit(gateway.ExitCode(err))
	}
}

// run is gateway.Run with a metrics.Collector fed by the gateway's hooks
// and registered with its selector and server, served at MetricsPath with
// the Go runtime's and the process's metrics.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := metrics.New()
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	return gateway.Run(ctx, args, stdout, stderr,
		gateway.WithSelectorHook(c.SelectorHook()),
		gateway.WithServerHook(c.ServerHook()),
		gateway.WithRegister(func(sel *mtls.Selector, srv *mtls.Server) error {
			c.AddSelector(sel) // its inventory holds every API selector's
			c.AddServer(srv)
			return nil
		}),
		gateway.WithAdminHandler(MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})),
	)
}
