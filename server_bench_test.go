//go:build unix

package mtls

// Benchmarks of the client-facing side (targets in BENCHMARKS.md):
//
//   - BenchmarkServerCallbacks: GetConfigForClient and GetCertificate of
//     TLSConfig() with 10 and 10,000 SNI patterns (target: 0 allocs/op).
//   - BenchmarkServerHandshake: a full mTLS handshake against TLSConfig()
//     with 10,000 SNI patterns, client CAs and an allowlist of 1,000 IDs,
//     against a hand-written tls.Config (one certificate,
//     RequireAndVerifyClientCert) (target: within 1.05x).
//   - BenchmarkServerAllowlist: the allowlist check alone at 10 and 10,000
//     IDs (target: the same cost).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
)

// sbenchClients issues n client certificates once per process and adds
// them, without keys, to the benchmarks' store.
var sbenchClients = sync.OnceValues(func() ([]string, error) {
	st, err := tbenchOnce()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, 10000)
	for i := range 10000 {
		l, err := st.ca.Issue(mtlstest.Options{CommonName: "client " + strconv.Itoa(i)})
		if err != nil {
			return nil, err
		}
		id, err := st.store.Add(context.Background(), l.CertPEM)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
})

// sbenchServer returns a Server with n SNI patterns (exact names and
// wildcards, one of them tbenchHost), client CAs, and an allowlist of the
// first ids of sbenchClients and the benchmarks' client.
func sbenchServer(b *testing.B, patterns, ids int) *Server {
	b.Helper()
	st := tbenchSetup(b)
	clients, err := sbenchClients()
	if err != nil {
		b.Fatal(err)
	}
	serverID := add(b, st.store, st.server.PEM())
	certs := Map{tbenchHost: serverID}
	for i := 1; i < patterns; i++ {
		if i%2 == 0 {
			certs["svc"+strconv.Itoa(i)+".example.test"] = serverID
		} else {
			certs["*.team"+strconv.Itoa(i)+".example.test"] = serverID
		}
	}
	allowed := append([]string{st.clientID}, clients[:ids-1]...)
	s, err := NewServer(st.store, ServerPolicy{Certificates: certs, ClientCAs: st.ca.Pool, AllowedClients: allowed})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkServerCallbacks(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			cfg := sbenchServer(b, n, 10).TLSConfig()
			hello := &tls.ClientHelloInfo{ServerName: tbenchHost}
			b.ReportAllocs()
			for b.Loop() {
				if c, err := cfg.GetConfigForClient(hello); err != nil || c == nil {
					b.Fatal("no config that asks for a client certificate", err)
				}
				if c, err := cfg.GetCertificate(hello); err != nil || c == nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkServerHandshake(b *testing.B) {
	st := tbenchSetup(b)
	hand := &tls.Config{
		Certificates:           []tls.Certificate{st.server.TLS},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              st.ca.Pool,
		SessionTicketsDisabled: true,
	}
	ours := sbenchServer(b, 10000, 1000).TLSConfig()
	ours.SessionTicketsDisabled = true
	client := &tls.Config{
		Certificates: []tls.Certificate{st.storeCert(b, st.clientID)},
		RootCAs:      st.ca.Pool,
		ServerName:   tbenchHost,
	}
	for _, bc := range []struct {
		name string
		cfg  *tls.Config
	}{{"config=hand-written", hand}, {"config=mtls", ours}} {
		b.Run(bc.name, func(b *testing.B) {
			pair := func() (net.Conn, net.Conn, error) { return tbenchPipe() }
			if _, err := tbenchHandshake(pair, client, bc.cfg); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := tbenchCPU(b)
			for b.Loop() {
				if _, err := tbenchHandshake(pair, client, bc.cfg); err != nil {
					b.Fatal(err)
				}
			}
			cpu()
		})
	}
}

func BenchmarkServerAllowlist(b *testing.B) {
	st := tbenchSetup(b)
	leaf := st.client.Cert
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("ids=%d", n), func(b *testing.B) {
			s := sbenchServer(b, 10, n)
			rules := &s.state.Load().global
			rules.cas = nil // the allowlist alone
			now := time.Now()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := rules.check(ctx, s.slots, []*x509.Certificate{leaf}, now, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
