package mtls

// curl proves the pin format: the sha256//<base64> pins the library prints
// are what `curl --pinnedpubkey` takes, and both refuse the same wrong pins.

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// curlPinInError finds the key an ErrPinMismatch error names.
var curlPinInError = regexp.MustCompile(`sha256//[A-Za-z0-9+/]{43}=`)

// curlExitPinMismatch is curl's CURLE_SSL_PINNEDPUBKEYNOTMATCH.
const curlExitPinMismatch = 90

// TestCurlAcceptsTheLibrarysPins runs curl against an mTLS upstream with
// the pins the library prints for it: Certificate.Pin of the server leaf as
// stored, and the key an ErrPinMismatch error names. curl accepts both and
// reaches the upstream with the client certificate; the library accepts the
// same pins in its policy; a wrong pin (another key, or the server's CA,
// since only the leaf counts) is refused by curl with exit code 90 and by
// the library with ErrPinMismatch.
func TestCurlAcceptsTheLibrarysPins(t *testing.T) {
	bin := requirePeer(t, "curl")
	ctx := context.Background()
	srvCA, cliCA := newCA(t, "curl servers"), newCA(t, "curl clients")
	srv := serverLeaf(t, srvCA, "curl upstream")
	cli := clientLeaf(t, cliCA, "curl-client")
	other := serverLeaf(t, srvCA, "another server")
	up := tlsUpstream(t, srv, cliCA) // answers with the ID of the client certificate it verified
	url := up.URLPath("/")

	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", srvCA.CertPEM)
	certFile := writeFile(t, dir, "client.pem", cli.CertPEM)
	keyFile := writeFile(t, dir, "client.key", cli.KeyPEM)
	// curl runs with the client certificate the upstream requires, so that
	// the pin is all that differs between success and failure.
	curl := func(pin string) (body, stderr string, code int) {
		t.Helper()
		return peerRun(t, bin, "-q", "--silent", "--show-error", "--noproxy", "*", "--max-time", "10",
			"--pinnedpubkey", pin, "--cacert", caFile, "--cert", certFile, "--key", keyFile, url)
	}
	curlOK := func(pin, what string) {
		t.Helper()
		body, stderr, code := curl(pin)
		require.Zero(t, code, "curl refused %s %s: %s", what, pin, stderr)
		require.Equal(t, cli.ID(), body, "the upstream did not verify curl's client certificate")
	}
	curlRefuses := func(pin, what string) {
		t.Helper()
		body, stderr, code := curl(pin)
		require.Equal(t, curlExitPinMismatch, code, "curl with %s %s: %s%s", what, pin, body, stderr)
	}

	store := newStore(t)
	cliID := add(t, store, cli.PEM())
	srvID := add(t, store, srv.CertPEM) // the server's certificate, without a key: a pin
	stored, err := store.Get(ctx, srvID)
	require.NoError(t, err)
	pin := stored.Pin()
	require.Regexp(t, `^`+curlPinInError.String()+`$`, pin)

	t.Run("Certificate.Pin is accepted by curl", func(t *testing.T) {
		curlOK(pin, "the stored certificate's Pin()")
	})

	wrong := pinFor(other.Cert)
	var named string
	t.Run("a wrong pin is refused by both", func(t *testing.T) {
		curlRefuses(wrong, "another key's pin")
		sel := newSelector(t, store, Policy{
			Certificates:     Map{up.Host: cliID},
			PinnedPublicKeys: Map{up.Host: wrong},
			RootCAs:          srvCA.Pool,
		})
		before := up.requests.Load()
		_, err := get(sel.RoundTripper(), url)
		require.ErrorIs(t, err, ErrPinMismatch)
		assert.Equal(t, before, up.requests.Load(), "a request reached the upstream through a pin mismatch")
		named = curlPinInError.FindString(err.Error())
		require.NotEmpty(t, named, "the error names no sha256// key: %v", err)
		assert.Equal(t, pin, named, "the key the error names is not the server's")
	})

	t.Run("the pin an ErrPinMismatch names is accepted by curl", func(t *testing.T) {
		require.NotEmpty(t, named, "no pin from the error")
		curlOK(named, "the pin the error names")
	})

	t.Run("only the leaf counts, for both", func(t *testing.T) {
		caPin := pinFor(srvCA.Cert)
		curlRefuses(caPin, "the server CA's pin")
		sel := newSelector(t, store, Policy{
			Certificates:     Map{up.Host: cliID},
			PinnedPublicKeys: Map{up.Host: caPin},
			RootCAs:          srvCA.Pool,
		})
		_, err := get(sel.RoundTripper(), url)
		require.ErrorIs(t, err, ErrPinMismatch)
	})

	t.Run("the library takes the pins curl took", func(t *testing.T) {
		for what, value := range map[string]string{
			"Certificate.Pin":         pin,
			"the pin an error named":  named,
			"the store ID":            srvID,
			"a list with a wrong one": wrong + ", " + pin,
		} {
			sel := newSelector(t, store, Policy{
				Certificates:     Map{up.Host: cliID},
				PinnedPublicKeys: Map{up.Host: value},
				RootCAs:          srvCA.Pool,
			})
			r, err := get(sel.RoundTripper(), url)
			require.NoError(t, err, "pinned by %s", what)
			require.Equal(t, http.StatusOK, r.status, "pinned by %s: %s", what, r.body)
			require.Equal(t, cliID, r.certID, "pinned by %s", what)
		}
	})
}
