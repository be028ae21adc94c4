// Command upstreams runs the two upstreams of the gateway's demo on
// loopback: billing on 127.0.0.1:9001 and orders on 127.0.0.1:9002. Each
// requires a client certificate from its own CA (billing-clients-ca.pem,
// orders-clients-ca.pem), so each takes only the certificate the gateway
// presents to it, and answers with what it saw.
//
//	go run ./examples/gateway/demo/mkcerts      # once
//	go run ./examples/gateway/demo/upstreams
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mtlsgo/mtls"
)

func main() {
	dir := flag.String("certs", filepath.Join("examples", "gateway", "demo", "certs"), "the `directory` mkcerts wrote")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "upstreams:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string) error {
	errs := make(chan error, 2)
	var servers []*http.Server
	for _, u := range []struct{ name, addr string }{{"billing", "127.0.0.1:9001"}, {"orders", "127.0.0.1:9002"}} {
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, u.name+"-upstream-full.pem"), filepath.Join(dir, u.name+"-upstream-full.pem"))
		if err != nil {
			return fmt.Errorf("%w (run go run ./examples/gateway/demo/mkcerts first)", err)
		}
		caPEM, err := os.ReadFile(filepath.Join(dir, u.name+"-clients-ca.pem"))
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		name := u.name
		srv := &http.Server{
			Addr: u.addr,
			TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    pool,
				MinVersion:   tls.VersionTLS12,
			},
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				leaf := r.TLS.PeerCertificates[0]
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]string{
					"upstream":    name,
					"path":        r.URL.Path,
					"client_cert": leaf.Subject.CommonName,
					"client_id":   mtls.Fingerprint(leaf.Raw),
				})
			}),
		}
		servers = append(servers, srv)
		go func() { errs <- srv.ListenAndServeTLS("", "") }()
		fmt.Printf("%s upstream on https://%s, taking clients of %s-clients-ca.pem\n", name, u.addr, name)
	}
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	for _, s := range servers {
		if err := s.Shutdown(context.Background()); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}
