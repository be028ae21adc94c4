package redisstore

// A real mTLS upstream on loopback (after testutil_test.go of package
// mtls): an httptest TLS server that requires a client certificate
// verified against a CA, and answers with the ID of the certificate it was
// presented and the length of the chain sent.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

type upstream struct {
	*httptest.Server
	URL string // https://127.0.0.1:port/
}

// startUpstream starts a TLS server presenting a certificate for
// 127.0.0.1 issued by ca, requiring a client certificate that verifies to
// clients' root.
func startUpstream(t testing.TB, ca, clients *mtlstest.CA) *upstream {
	t.Helper()
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "upstream", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers := r.TLS.PeerCertificates
		sum := sha256.Sum256(peers[0].Raw)
		w.Header().Set("X-Client-Cert", hex.EncodeToString(sum[:]))
		w.Header().Set("X-Chain", strconv.Itoa(len(peers)))
		io.WriteString(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests make fail on purpose
	srv.TLS = mtlstest.ServerConfig(leaf, clients)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &upstream{Server: srv, URL: "https://" + srv.Listener.Addr().String() + "/"}
}

// answer is what the upstream said.
type answer struct {
	certID string
	chain  int
}

// call sends one GET through rt.
func call(rt http.RoundTripper, url string) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	n, _ := strconv.Atoi(resp.Header.Get("X-Chain"))
	return answer{certID: resp.Header.Get("X-Client-Cert"), chain: n}, nil
}

// newSelector makes a Selector over store mapping 127.0.0.1 (the
// upstreams) to the certificate value, trusting ca; closed when t ends.
func newSelector(t testing.TB, store mtls.CertStore, value string, ca *mtlstest.CA) *mtls.Selector {
	t.Helper()
	sel, err := mtls.New(store, policy(value, ca))
	require.NoError(t, err)
	t.Cleanup(func() { sel.Close() })
	return sel
}

func policy(value string, ca *mtlstest.CA) mtls.Policy {
	return mtls.Policy{Certificates: mtls.Map{"127.0.0.1": value}, RootCAs: ca.Pool}
}

// closeIdle closes the idle connections of rt, so that the next request
// makes a new connection.
func closeIdle(rt http.RoundTripper) {
	if ci, ok := rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
