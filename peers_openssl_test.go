package mtls

// openssl s_server as a raw TLS upstream, reached with TLSConfigFor and
// tls.Dial: the handshake with another TLS stack, at each version, carries
// the mapped client certificate and its chain.

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sslsrvAccept is the line s_server prints once it listens.
var sslsrvAccept = regexp.MustCompile(`(?m)^ACCEPT (127\.0\.0\.1:\d+)$`)

// sslsrvVerified is what s_server logs when it has verified the test's
// client certificate.
const sslsrvVerified = "depth=0 O = mtlstest, CN = openssl-client\nverify return:1\n"

// sslsrvStart runs `openssl s_server -www` on a port the kernel picks and
// returns the address it listens on. It requires a client certificate
// (-Verify 2) that verifies to the CA file, and closes the connection when
// it does not (-verify_return_error).
func sslsrvStart(t *testing.T, bin, dir string, extra ...string) (*peerProc, string) {
	t.Helper()
	args := append([]string{"s_server",
		"-accept", "127.0.0.1:0",
		"-cert", "server.pem", "-key", "server.key",
		"-CAfile", "clients.pem", "-Verify", "2", "-verify_return_error",
		"-www",
	}, extra...)
	p := peerStart(t, "openssl s_server", dir, bin, args...)
	m, err := peerWaitOutput(p, sslsrvAccept)
	if err != nil {
		p.stop()
		p.log(t)
		t.Fatal(err)
	}
	return p, m[1]
}

// sslsrvGet makes one connection with cfg to addr, asks s_server's status
// page, and returns it with the connection's state.
func sslsrvGet(addr string, cfg *tls.Config) (tls.ConnectionState, string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitFor)); err != nil {
		return tls.ConnectionState{}, "", err
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return tls.ConnectionState{}, "", err
	}
	page, err := io.ReadAll(conn)
	return conn.ConnectionState(), string(page), err
}

// sslsrvClientCert returns the DER of the client certificate s_server's
// status page shows, nil if it shows none.
func sslsrvClientCert(page string) []byte {
	_, rest, ok := strings.Cut(page, "Client certificate")
	if !ok {
		return nil
	}
	block, _ := pem.Decode([]byte(rest))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil
	}
	return block.Bytes
}

// TestOpenSSLServerSeesTheMappedCertificate makes TLS 1.2 and TLS 1.3
// connections to openssl s_server with the config TLSConfigFor returns: the
// handshake succeeds at the version the server allows, the server is
// verified against the policy's roots, and s_server, which requires a
// client certificate verifying through an intermediate to its CA file,
// shows the mapped certificate on its status page. Once the certificate is
// deleted from the store, TLSConfigFor fails closed, and a config obtained
// before fails its handshake rather than go without a certificate (and
// presents the certificate again once it is back).
func TestOpenSSLServerSeesTheMappedCertificate(t *testing.T) {
	bin := requirePeer(t, "openssl")
	srvCA, cliCA := newCA(t, "s_server servers"), newCA(t, "s_server clients")
	inter, err := cliCA.Intermediate("s_server clients intermediate")
	require.NoError(t, err)
	srv := serverLeaf(t, srvCA, "s_server")
	cli := clientLeaf(t, inter, "openssl-client")
	dir := t.TempDir()
	writeFile(t, dir, "server.pem", srv.CertPEM)
	writeFile(t, dir, "server.key", srv.KeyPEM)
	writeFile(t, dir, "clients.pem", cliCA.CertPEM) // the root only: the client sends the intermediate

	store := newStore(t)
	id := add(t, store, cli.PEM())
	sel := newSelector(t, store, Policy{Certificates: Map{"127.0.0.1": id}, RootCAs: srvCA.Pool})

	for _, tc := range []struct {
		name    string
		flag    string
		version uint16
	}{
		{"TLS1.2", "-tls1_2", tls.VersionTLS12},
		{"TLS1.3", "-tls1_3", tls.VersionTLS13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, addr := sslsrvStart(t, bin, dir, tc.flag)
			cfg, err := sel.TLSConfigFor(addr)
			require.NoError(t, err)
			cs, page, err := sslsrvGet(addr, cfg)
			require.NoError(t, err)
			assert.Equal(t, tls.VersionName(tc.version), tls.VersionName(cs.Version), "negotiated version")
			require.NotEmpty(t, cs.PeerCertificates)
			assert.True(t, cs.PeerCertificates[0].Equal(srv.Cert), "s_server presented %q", cs.PeerCertificates[0].Subject)
			require.NotEmpty(t, cs.VerifiedChains, "the server's chain was not verified against RootCAs")

			seen := sslsrvClientCert(page)
			require.NotNil(t, seen, "s_server's status page shows no client certificate:\n%s", page)
			assert.Equal(t, id, Fingerprint(seen), "s_server saw another client certificate")
			assert.Contains(t, page, "Verify return code: 0 (ok)", "s_server's verification of the client chain")
			// s_server's log of that verification, through the intermediate.
			assert.Equal(t, 1, peerWaitStderr(p, sslsrvVerified, 1),
				"s_server's log:\n%s", p.stderr.String())
		})
	}

	t.Run("deleted certificate fails closed", func(t *testing.T) {
		p, addr := sslsrvStart(t, bin, dir, "-tls1_3")
		held, err := sel.TLSConfigFor(addr)
		require.NoError(t, err)
		del(t, store, id)

		cfg, err := sel.TLSConfigFor(addr)
		require.ErrorIs(t, err, ErrNotFound)
		require.Nil(t, cfg)
		assert.Contains(t, err.Error(), addr, "the error names the host")
		assert.Contains(t, err.Error(), id, "the error names the mapped value")

		// A config held from before follows the store: its handshake fails
		// on the client side, never proceeding without a certificate.
		_, page, err := sslsrvGet(addr, held)
		require.ErrorIs(t, err, ErrNotFound, "s_server answered:\n%s", page)

		// Back in the store, the held config presents it again. s_server
		// serves one connection after the other and logs in order, so once
		// this connection's verification is in its log, so is anything of
		// the failed one: it verified one certificate in all.
		add(t, store, cli.PEM())
		_, page, err = sslsrvGet(addr, held)
		require.NoError(t, err)
		assert.Equal(t, id, Fingerprint(sslsrvClientCert(page)))
		assert.Equal(t, 1, peerWaitStderr(p, sslsrvVerified, 1),
			"s_server verified a client certificate during the failed handshake:\n%s", p.stderr.String())
	})
}
