package mtls

// Tests of semantics §4 (verifying the upstream): pins restrict chain
// verification and never replace it, in every form a pin may take, through
// http.Client, TransportFor and TLSConfigFor + tls.Dial.

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// pinWorld is a trusted server, its pins in every form, and a key that is
// not the server's.
type pinWorld struct {
	ca     *mtlstest.CA
	server *mtlstest.Leaf
	other  *mtlstest.Leaf // trusted, but not the server
	store  *MemoryStore
	up     *upstream
}

func newPinWorld(t *testing.T) *pinWorld {
	ca := newCA(t, "servers")
	w := &pinWorld{ca: ca, server: serverLeaf(t, ca, "server"), other: serverLeaf(t, ca, "other"), store: newStore(t)}
	w.up = tlsUpstream(t, w.server, nil)
	return w
}

// §4: "A pin value is a comma-separated list (spaces around items ignored)
// of: a store ID of a public key or of a certificate, sha256//<base64>, a
// file path, or inline PEM." The right pin passes in each.
func TestPinRightPinPassesInEveryForm(t *testing.T) {
	w := newPinWorld(t)
	dir := t.TempDir()
	certID := add(t, w.store, w.server.CertPEM) // the certificate alone, no key
	require.Equal(t, w.server.ID(), certID)
	keyID := add(t, w.store, publicKeyPEM(t, w.server))
	spkiSum := sha256.Sum256(w.server.Cert.RawSubjectPublicKeyInfo)
	require.Equal(t, Fingerprint(w.server.Cert.RawSubjectPublicKeyInfo), keyID, "the ID of a bare key is the SHA-256 of its SPKI")
	otherID := add(t, w.store, publicKeyPEM(t, w.other))

	forms := map[string]string{
		"store ID of a certificate":             certID,
		"store ID of a certificate, org prefix": "acme42" + certID,
		"store ID of a public key":              keyID,
		"sha256//base64":                        "sha256//" + base64.StdEncoding.EncodeToString(spkiSum[:]),
		"file with the certificate":             writeFile(t, dir, "server.pem", w.server.CertPEM),
		"file with the public key":              writeFile(t, dir, "server.pub", publicKeyPEM(t, w.server)),
		"file with certificate and key":         writeFile(t, dir, "server+key.pem", w.server.PEM()),
		"inline certificate":                    string(w.server.CertPEM),
		"inline public key":                     string(publicKeyPEM(t, w.server)),
		"list where the last item matches":      pinFor(w.other.Cert) + " ,  " + otherID + " , " + pinFor(w.server.Cert),
		"list where the first item matches":     "  " + keyID + "," + pinFor(w.other.Cert),
		"list of a file and an inline key":      writeFile(t, dir, "other.pem", w.other.CertPEM) + ", " + string(publicKeyPEM(t, w.server)),
		"list with the right pin twice":         pinFor(w.server.Cert) + "," + certID,
		"list with wrong items first":           otherID + ", " + pinFor(w.other.Cert) + ", " + keyID,
	}
	for name, pin := range forms {
		t.Run(name, func(t *testing.T) {
			sel := newSelector(t, w.store, Policy{PinnedPublicKeys: Map{w.up.Host: pin}, RootCAs: w.ca.Pool})
			mustGet(t, sel.RoundTripper(), w.up.URL)
			tr, err := sel.TransportFor(w.up.Host)
			require.NoError(t, err)
			mustGet(t, tr, w.up.URL)
			cfg, err := sel.TLSConfigFor(w.up.Host)
			require.NoError(t, err)
			r, err := dialGet(w.up.Addr, cfg)
			require.NoError(t, err)
			require.Equal(t, 200, r.status)
		})
	}
}

// §4: a wrong pin fails with ErrPinMismatch, and "mismatch errors ... name
// the host and the presented key as sha256//<base64>".
func TestPinWrongPinFailsNamingHostAndPresentedKey(t *testing.T) {
	w := newPinWorld(t)
	otherID := add(t, w.store, publicKeyPEM(t, w.other))
	presented := pinFor(w.server.Cert)
	for name, pin := range map[string]string{
		"sha256//":  pinFor(w.other.Cert),
		"store ID":  otherID,
		"inline":    string(w.other.CertPEM),
		"file":      writeFile(t, t.TempDir(), "other.pem", w.other.CertPEM),
		"two wrong": pinFor(w.other.Cert) + ", " + otherID,
	} {
		t.Run(name, func(t *testing.T) {
			sel := newSelector(t, w.store, Policy{PinnedPublicKeys: Map{w.up.Host: pin}, RootCAs: w.ca.Pool})
			before := w.up.requests.Load()
			_, err := get(sel.RoundTripper(), w.up.URL)
			require.ErrorIs(t, err, ErrPinMismatch)
			require.Contains(t, err.Error(), presented, "the error names the presented key")
			require.Contains(t, err.Error(), w.up.Host, "the error names the host")
			require.Equal(t, before, w.up.requests.Load(), "a request reached a host whose pin did not match")

			cfg, err := sel.TLSConfigFor(w.up.Host)
			require.NoError(t, err)
			_, err = dialGet(w.up.Addr, cfg)
			require.ErrorIs(t, err, ErrPinMismatch)
			require.Contains(t, err.Error(), presented)
		})
	}
}

// §4: "A host with no pins keeps exactly the default verification: pins on
// one host never weaken another."
func TestPinOnOneHostNeverWeakensAnother(t *testing.T) {
	w := newPinWorld(t)
	untrusted := newCA(t, "untrusted")
	rogueLeaf := serverLeaf(t, untrusted, "rogue")
	rogue := tlsUpstream(t, rogueLeaf, nil)
	// Pin the first host, even to the rogue's key: the second, unpinned,
	// host must still fail chain verification.
	for name, pins := range map[string]Map{
		"pinned to its own key":   {w.up.Host: pinFor(w.server.Cert)},
		"pinned to the rogue key": {w.up.Host: pinFor(rogueLeaf.Cert) + "," + pinFor(w.server.Cert)},
		"pattern of another port": {"127.0.0.1:1": pinFor(rogueLeaf.Cert)},
	} {
		t.Run(name, func(t *testing.T) {
			sel := newSelector(t, nil, Policy{PinnedPublicKeys: pins, RootCAs: w.ca.Pool})
			if _, ok := pins[w.up.Host]; ok {
				mustGet(t, sel.RoundTripper(), w.up.URL)
			}
			_, err := get(sel.RoundTripper(), rogue.URL)
			requireUnknownAuthority(t, err)
			require.Zero(t, rogue.requests.Load())

			cfg, err := sel.TLSConfigFor(rogue.Host)
			require.NoError(t, err)
			_, err = dialGet(rogue.Addr, cfg)
			requireUnknownAuthority(t, err)
		})
	}
}

// §4: "Only the leaf counts: a chain that carries a pinned certificate
// somewhere else does not pass."
func TestPinOnlyTheLeafCounts(t *testing.T) {
	ca := newCA(t, "servers")
	pinned := serverLeaf(t, ca, "pinned")
	attacker := serverLeaf(t, ca, "attacker") // trusted by the chain check: only the pin can stop it
	chain := tls.Certificate{
		Certificate: [][]byte{attacker.Cert.Raw, pinned.Cert.Raw},
		PrivateKey:  attacker.Key,
	}
	up := startUpstream(t, upstreamConfig{cert: chain})
	for _, insecure := range []bool{false, true} {
		name := "verified chain"
		if insecure {
			name = "InsecureSkipVerify"
		}
		t.Run(name, func(t *testing.T) {
			sel := newSelector(t, nil, Policy{
				PinnedPublicKeys:   Map{up.Host: pinFor(pinned.Cert)},
				RootCAs:            ca.Pool,
				InsecureSkipVerify: insecure,
			})
			_, err := get(sel.RoundTripper(), up.URL)
			require.ErrorIs(t, err, ErrPinMismatch, "a chain carrying the pinned certificate after the leaf passed")
			require.Contains(t, err.Error(), pinFor(attacker.Cert))
			cfg, err := sel.TLSConfigFor(up.Host)
			require.NoError(t, err)
			_, err = dialGet(up.Addr, cfg)
			require.ErrorIs(t, err, ErrPinMismatch)
			require.Zero(t, up.requests.Load())
		})
	}
}

// §4: "Pinning restricts, never replaces": the right pin on an untrusted
// chain, or for the wrong host name, still fails chain verification.
func TestPinsAddToChainVerification(t *testing.T) {
	untrusted, trusted := newCA(t, "untrusted"), newCA(t, "trusted")
	leaf := serverLeaf(t, untrusted, "server")
	up := tlsUpstream(t, leaf, nil)
	sel := newSelector(t, nil, Policy{PinnedPublicKeys: Map{up.Host: pinFor(leaf.Cert)}, RootCAs: trusted.Pool})
	_, err := get(sel.RoundTripper(), up.URL)
	requireUnknownAuthority(t, err)
	cfg, err := sel.TLSConfigFor(up.Host)
	require.NoError(t, err)
	_, err = dialGet(up.Addr, cfg)
	requireUnknownAuthority(t, err)

	// Trusted chain, right pin, but a certificate for another name.
	named := issue(t, trusted, mtlstest.Options{CommonName: "elsewhere", DNSNames: []string{"elsewhere.example"}})
	up2 := tlsUpstream(t, named, nil)
	sel2 := newSelector(t, nil, Policy{PinnedPublicKeys: Map{up2.Host: pinFor(named.Cert)}, RootCAs: trusted.Pool})
	_, err = get(sel2.RoundTripper(), up2.URL)
	require.Error(t, err, "a certificate for another name passed because its key was pinned")
	require.NotErrorIs(t, err, ErrPinMismatch)
	require.Zero(t, up.requests.Load()+up2.requests.Load())
}

// §4: "InsecureSkipVerify ... skips chain and hostname checks only; pins
// are still enforced."
func TestPinsStayEnforcedUnderInsecureSkipVerify(t *testing.T) {
	untrusted, trusted := newCA(t, "untrusted"), newCA(t, "trusted")
	leaf := serverLeaf(t, untrusted, "server")
	wrong := serverLeaf(t, untrusted, "wrong")
	up := tlsUpstream(t, leaf, nil)

	sel := newSelector(t, nil, Policy{
		PinnedPublicKeys: Map{up.Host: pinFor(wrong.Cert)}, RootCAs: trusted.Pool, InsecureSkipVerify: true,
	})
	_, err := get(sel.RoundTripper(), up.URL)
	require.ErrorIs(t, err, ErrPinMismatch, "InsecureSkipVerify turned pins off")
	require.Contains(t, err.Error(), pinFor(leaf.Cert))
	cfg, err := sel.TLSConfigFor(up.Host)
	require.NoError(t, err)
	_, err = dialGet(up.Addr, cfg)
	require.ErrorIs(t, err, ErrPinMismatch)
	require.Zero(t, up.requests.Load())

	// InsecureSkipVerify at the gateway, pins at the API level: still enforced.
	api := forAPI(t, newSelector(t, nil, Policy{InsecureSkipVerify: true}), Policy{
		PinnedPublicKeys: Map{"*": pinFor(wrong.Cert)},
	})
	_, err = get(api.RoundTripper(), up.URL)
	require.ErrorIs(t, err, ErrPinMismatch)

	sel = newSelector(t, nil, Policy{
		PinnedPublicKeys: Map{up.Host: pinFor(leaf.Cert)}, RootCAs: trusted.Pool, InsecureSkipVerify: true,
	})
	mustGet(t, sel.RoundTripper(), up.URL)
	cfg, err = sel.TLSConfigFor(up.Host)
	require.NoError(t, err)
	r, err := dialGet(up.Addr, cfg)
	require.NoError(t, err)
	require.Equal(t, 200, r.status)
}

// §4: "A pin that cannot be resolved when the policy is set is an error
// there."
func TestPinUnresolvableIsAnErrorWhenSet(t *testing.T) {
	w := newPinWorld(t)
	good := Policy{PinnedPublicKeys: Map{w.up.Host: pinFor(w.server.Cert)}, RootCAs: w.ca.Pool}
	unknownID := strings.Repeat("5a", 32)
	bad := map[string]string{
		"unknown store ID":        unknownID,
		"unknown store ID listed": pinFor(w.server.Cert) + ", " + unknownID,
		"missing file":            t.TempDir() + "/missing.pem",
		"bad base64":              "sha256//not base64!!",
		"base64 of a short hash":  "sha256//" + base64.StdEncoding.EncodeToString([]byte("short")),
		"garbage inline PEM":      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"file that is not PEM":    writeFile(t, t.TempDir(), "garbage.pem", []byte("not a certificate")),
	}
	for name, pin := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := New(w.store, Policy{PinnedPublicKeys: Map{w.up.Host: pin}, RootCAs: w.ca.Pool})
			require.Error(t, err, "New accepted the pin %q", pin)

			sel := newSelector(t, w.store, good)
			mustGet(t, sel.RoundTripper(), w.up.URL)
			err = sel.Update(Policy{PinnedPublicKeys: Map{w.up.Host: pin}, RootCAs: w.ca.Pool})
			require.Error(t, err, "Update accepted the pin %q", pin)
			_, err = sel.ForAPI(Policy{PinnedPublicKeys: Map{w.up.Host: pin}})
			require.Error(t, err, "ForAPI accepted the pin %q", pin)
			// On error the old policy stays.
			mustGet(t, sel.RoundTripper(), w.up.URL)
		})
	}
	// A store ID without a store.
	_, err := New(nil, Policy{PinnedPublicKeys: Map{w.up.Host: w.server.ID()}})
	require.ErrorIs(t, err, ErrNotFound)
}

// §4: "A pin deleted or unreadable later drops out; a host left with no
// usable pin fails every handshake with ErrPinMismatch: it never reverts to
// unpinned."
func TestPinDeletedLaterDropsOutAndNeverUnpins(t *testing.T) {
	t.Run("store key deleted, another pin left", func(t *testing.T) {
		w := newPinWorld(t)
		keyID := add(t, w.store, publicKeyPEM(t, w.server))
		otherID := add(t, w.store, publicKeyPEM(t, w.other))
		sel := newSelector(t, w.store, Policy{PinnedPublicKeys: Map{w.up.Host: keyID + ", " + otherID}, RootCAs: w.ca.Pool})
		mustGet(t, sel.RoundTripper(), w.up.URL)
		del(t, w.store, keyID)
		_, err := get(sel.RoundTripper(), w.up.URL)
		require.ErrorIs(t, err, ErrPinMismatch, "a deleted pin still matched")
		require.Contains(t, err.Error(), pinFor(w.server.Cert))
	})
	t.Run("store key deleted, no pin left", func(t *testing.T) {
		w := newPinWorld(t)
		keyID := add(t, w.store, publicKeyPEM(t, w.server))
		sel := newSelector(t, w.store, Policy{PinnedPublicKeys: Map{w.up.Host: keyID}, RootCAs: w.ca.Pool})
		mustGet(t, sel.RoundTripper(), w.up.URL)
		cfg, err := sel.TLSConfigFor(w.up.Host)
		require.NoError(t, err)
		del(t, w.store, keyID)
		for range 2 {
			_, err = get(sel.RoundTripper(), w.up.URL)
			require.ErrorIs(t, err, ErrPinMismatch, "a host left with no pin reverted to unpinned")
		}
		_, err = dialGet(w.up.Addr, cfg)
		require.ErrorIs(t, err, ErrPinMismatch, "a held tls.Config reverted to unpinned")
		// Adding the key back restores the pin.
		add(t, w.store, publicKeyPEM(t, w.server))
		mustGet(t, sel.RoundTripper(), w.up.URL)
	})
	t.Run("store key deleted, store without notifications", func(t *testing.T) {
		w := newPinWorld(t)
		keyID := add(t, w.store, publicKeyPEM(t, w.server))
		sel := newSelector(t, silentStore{w.store}, Policy{PinnedPublicKeys: Map{w.up.Host: keyID}, RootCAs: w.ca.Pool})
		mustGet(t, sel.RoundTripper(), w.up.URL)
		closeIdle(t, sel.RoundTripper())
		del(t, w.store, keyID)
		_, err := get(sel.RoundTripper(), w.up.URL)
		require.ErrorIs(t, err, ErrPinMismatch)
	})
	t.Run("pin file removed", func(t *testing.T) {
		w := newPinWorld(t)
		path := writeFile(t, t.TempDir(), "pin.pem", w.server.CertPEM)
		sel := newSelector(t, nil, Policy{PinnedPublicKeys: Map{w.up.Host: path}, RootCAs: w.ca.Pool})
		mustGet(t, sel.RoundTripper(), w.up.URL)
		require.NoError(t, os.Remove(path))
		_, err := get(sel.RoundTripper(), w.up.URL)
		require.ErrorIs(t, err, ErrPinMismatch)
	})
	t.Run("pin file made unreadable garbage", func(t *testing.T) {
		w := newPinWorld(t)
		path := writeFile(t, t.TempDir(), "pin.pem", w.server.CertPEM)
		sel := newSelector(t, nil, Policy{PinnedPublicKeys: Map{w.up.Host: path + "," + pinFor(w.other.Cert)}, RootCAs: w.ca.Pool})
		mustGet(t, sel.RoundTripper(), w.up.URL)
		replaceFile(t, path, []byte("garbage"))
		_, err := get(sel.RoundTripper(), w.up.URL)
		require.ErrorIs(t, err, ErrPinMismatch)
	})
	t.Run("pin file replaced by another key", func(t *testing.T) {
		w := newPinWorld(t)
		path := writeFile(t, t.TempDir(), "pin.pem", w.server.CertPEM)
		sel := newSelector(t, nil, Policy{PinnedPublicKeys: Map{w.up.Host: path}, RootCAs: w.ca.Pool})
		mustGet(t, sel.RoundTripper(), w.up.URL)
		replaceFile(t, path, w.other.CertPEM)
		_, err := get(sel.RoundTripper(), w.up.URL)
		require.ErrorIs(t, err, ErrPinMismatch)
		replaceFile(t, path, publicKeyPEM(t, w.server))
		mustGet(t, sel.RoundTripper(), w.up.URL)
	})
}

// §4 with TLSConfigFor: the config's callbacks check the pins on tls.Dial.
func TestPinTLSConfigForWithTLSDial(t *testing.T) {
	w := newPinWorld(t)
	sel := newSelector(t, nil, Policy{
		PinnedPublicKeys: Map{w.up.Host: pinFor(w.server.Cert), "localhost": pinFor(w.other.Cert)},
		RootCAs:          w.ca.Pool,
	})
	cfg, err := sel.TLSConfigFor(w.up.Host)
	require.NoError(t, err)
	require.NotNil(t, cfg.VerifyPeerCertificate, "pins are checked by VerifyPeerCertificate")
	require.NotNil(t, cfg.VerifyConnection, "pins are checked again by VerifyConnection")
	require.GreaterOrEqual(t, cfg.MinVersion, uint16(tls.VersionTLS12))
	conn, err := tls.Dial("tcp", w.up.Addr, cfg)
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	_, port, err := net.SplitHostPort(w.up.Addr)
	require.NoError(t, err)
	cfg, err = sel.TLSConfigFor("localhost:" + port)
	require.NoError(t, err)
	require.Equal(t, "localhost", cfg.ServerName)
	_, err = tls.Dial("tcp", w.up.Addr, cfg)
	require.ErrorIs(t, err, ErrPinMismatch)
	require.Contains(t, err.Error(), pinFor(w.server.Cert))
}
