package mtls

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

func TestServerSmoke(t *testing.T) {
	ca := newCA(t, "smoke")
	srvA := issue(t, ca, mtlstest.Options{CommonName: "a", DNSNames: []string{"a.localhost"}})
	srvB := issue(t, ca, mtlstest.Options{CommonName: "b", DNSNames: []string{"b.localhost"}})
	good, bad := clientLeaf(t, ca, "good"), clientLeaf(t, ca, "bad")
	store := newStore(t)
	idA, idB := add(t, store, srvA.PEM()), add(t, store, srvB.PEM())
	goodID := add(t, store, good.CertPEM)
	var events eventLog
	s, err := NewServer(store, ServerPolicy{
		Certificates:   Map{"a.localhost": idA, "*": idB},
		ClientCAs:      ca.Pool,
		AllowedClients: []string{goodID},
	}, WithEventHook(events.hook))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewUnstartedServer(s.Middleware("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := VerifiedClient(r)
		io.WriteString(w, c.CommonName)
	})))
	srv.TLS = s.TLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	get := func(sni string, leaf *mtlstest.Leaf) (string, string, error) {
		cfg := &tls.Config{RootCAs: ca.Pool, ServerName: sni}
		if leaf != nil {
			cfg.Certificates = []tls.Certificate{leaf.TLS}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Host = sni
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return "", "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	body, cn, err := get("a.localhost", good)
	require.NoError(t, err)
	require.Equal(t, "good", body)
	require.Equal(t, "a", cn)
	_, _, err = get("a.localhost", bad)
	require.Error(t, err)
	_, _, err = get("a.localhost", nil)
	require.Error(t, err)
	body, cn, err = get("b.localhost", good)
	require.NoError(t, err)
	require.Equal(t, "b", cn)
	t.Log(events.String())
}
