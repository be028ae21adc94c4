package mtls

// Regression tests of what a user meets in the first hour (semantics §1, §3,
// §4): a policy with mistakes in it fails fast with one error that lists
// them all, values that look like IDs or pins written the wrong way are
// never taken for file paths, error texts carry "mtls: " once, zero values
// never panic, refusals are reported as events, and a pool keeps enough
// idle connections for concurrent load. Requests make real TLS handshakes
// on loopback.

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// fhRequireText checks that err's text starts with "mtls: " and holds it
// once.
func fhRequireText(t testing.TB, err error) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	require.True(t, strings.HasPrefix(msg, "mtls: "), "the error does not start with %q: %q", "mtls: ", msg)
	require.Equal(t, 1, strings.Count(msg, "mtls: "), "the error does not hold %q exactly once: %q", "mtls: ", msg)
}

// fhPolicyError returns err as a *PolicyError.
func fhPolicyError(t testing.TB, err error) *PolicyError {
	t.Helper()
	var pe *PolicyError
	require.True(t, errors.As(err, &pe), "not a *PolicyError: %T %v", err, err)
	return pe
}

// fhValueName is how errors, problems and events name a map value: inline
// PEM by its SHA-256, anything else as written (quoting allowed).
func fhValueName(value string) string {
	if strings.Contains(value, "-----BEGIN") {
		return "inline PEM sha256:" + Fingerprint([]byte(value))
	}
	return value
}

// fhRequireValue checks the Value of a Problem or an Event.
func fhRequireValue(t testing.TB, got, value string) {
	t.Helper()
	want := fhValueName(value)
	if strings.Contains(value, "-----BEGIN") {
		require.Equal(t, want, got, "inline PEM is named by its SHA-256")
		return
	}
	if got != want && got != strconv.Quote(want) {
		t.Fatalf("Value is %q, want %q (as written, or quoted)", got, want)
	}
}

// fhTypo changes the last hex digit of id.
func fhTypo(id string) string {
	last := id[len(id)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return id[:len(id)-1] + string(repl)
}

// fhColonHex writes sum as openssl prints a fingerprint: upper-case hex
// pairs separated by colons.
func fhColonHex(sum []byte) string {
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = strings.ToUpper(hex.EncodeToString([]byte{b}))
	}
	return strings.Join(pairs, ":")
}

// fhWorld: a trusted upstream that requires client certificates of cliCA,
// two good client certificates in files, and values that are wrong in every
// way fail fast covers, with a FileStore opened with the wrong secret.
type fhWorld struct {
	srvCA, cliCA        *mtlstest.CA
	good, good2         *mtlstest.Leaf
	goodPath, good2Path string
	up                  *upstream

	storeA, storeB *FileStore // one directory, secrets A and B
	keyedID        string     // an entry with a key, added through storeA
	certOnlyID     string     // an entry without a key

	missingPath   string
	unknownID     string
	typoID        string // keyedID with one digit changed
	noKeyFile     string
	expiredFile   string
	expiredInline string
	missingPin    string
	garbagePin    string // a file that holds no PEM
}

func newFHWorld(t *testing.T) *fhWorld {
	w := &fhWorld{srvCA: newCA(t, "servers"), cliCA: newCA(t, "clients")}
	w.good, w.good2 = clientLeaf(t, w.cliCA, "good"), clientLeaf(t, w.cliCA, "good two")
	dir := t.TempDir()
	w.goodPath = writeFile(t, dir, "good.pem", w.good.PEM())
	w.good2Path = writeFile(t, dir, "good2.pem", w.good2.PEM())
	w.up = tlsUpstream(t, serverLeaf(t, w.srvCA, "up"), w.cliCA)

	storeDir := t.TempDir()
	var err error
	w.storeA, err = NewFileStore(storeDir, []byte("secret A"))
	require.NoError(t, err)
	t.Cleanup(func() { w.storeA.Close() })
	w.keyedID = add(t, w.storeA, clientLeaf(t, w.cliCA, "keyed").PEM())
	w.storeB, err = NewFileStore(storeDir, []byte("secret B"))
	require.NoError(t, err)
	t.Cleanup(func() { w.storeB.Close() })
	w.certOnlyID = add(t, w.storeA, clientLeaf(t, w.cliCA, "cert only").CertPEM)

	w.missingPath = filepath.Join(dir, "missing.pem")
	w.unknownID = Fingerprint([]byte("no such certificate"))
	w.typoID = fhTypo(w.keyedID)
	w.noKeyFile = writeFile(t, dir, "nokey.pem", clientLeaf(t, w.cliCA, "no key").CertPEM)
	expired := expiredLeaf(t, w.cliCA, "expired")
	w.expiredFile = writeFile(t, dir, "expired.pem", expired.PEM())
	w.expiredInline = string(expiredLeaf(t, w.cliCA, "expired inline").PEM())
	w.missingPin = filepath.Join(dir, "missing-pin.pem")
	w.garbagePin = writeFile(t, dir, "garbage-pin.pem", []byte("not a key\n"))
	return w
}

// fhBadValue is one value of a policy that cannot be used.
type fhBadValue struct {
	name  string
	field string // "Certificates" or "PinnedPublicKeys"
	value string
	want  []error // the error wraps one of these
}

// checkProblems are the values that parse but cannot be used now.
func (w *fhWorld) checkProblems() []fhBadValue {
	return []fhBadValue{
		{"missing certificate file", "Certificates", w.missingPath, []error{ErrNotFound}},
		{"unknown store ID", "Certificates", w.unknownID, []error{ErrNotFound}},
		{"store ID with one digit changed", "Certificates", w.typoID, []error{ErrNotFound}},
		{"store entry without key", "Certificates", w.certOnlyID, []error{ErrNoPrivateKey}},
		{"file without key", "Certificates", w.noKeyFile, []error{ErrNoPrivateKey}},
		{"expired file", "Certificates", w.expiredFile, []error{ErrExpired}},
		{"expired inline PEM", "Certificates", w.expiredInline, []error{ErrExpired}},
		{"FileStore opened with the wrong secret", "Certificates", w.keyedID, []error{ErrDecrypt}},
		{"pin: unknown store ID", "PinnedPublicKeys", Fingerprint([]byte("no such key")), []error{ErrNotFound, ErrPinMismatch}},
		{"pin: missing file", "PinnedPublicKeys", w.missingPin, []error{ErrNotFound, ErrPinMismatch}},
	}
}

func (b fhBadValue) policy(pattern string) Policy {
	if b.field == "Certificates" {
		return Policy{Certificates: Map{pattern: b.value}}
	}
	return Policy{PinnedPublicKeys: Map{pattern: b.value}}
}

func fhRequireIsAny(t testing.TB, err error, wants []error) {
	t.Helper()
	for _, w := range wants {
		if errors.Is(err, w) {
			return
		}
	}
	t.Fatalf("the error wraps none of %v: %v", wants, err)
}

// §3 "Fail fast on configuration": New, ForAPI and Update refuse each value
// that cannot be used now, with a *PolicyError naming level, field, pattern
// as written and value (inline PEM by its SHA-256). On Update the old
// policy stays: a request still gets the old certificate.
func TestFirstHourFailFastEachValue(t *testing.T) {
	w := newFHWorld(t)
	const pattern = "Fail-Fast.Example.COM:8443" // as written, not normalised
	bad := append(w.checkProblems(),
		// Refused either way: as a malformed ID (what §1 asks, checked by
		// TestFirstHourNearMissValuesAreNotPaths) or as a missing file.
		fhBadValue{"store ID with 63 hex digits", "Certificates", w.keyedID[:63], []error{ErrInvalidValue, ErrNotFound}},
		fhBadValue{"pin: file holding no PEM", "PinnedPublicKeys", w.garbagePin, []error{ErrNotFound, ErrPinMismatch, ErrInvalidValue}},
	)
	good := Policy{Certificates: Map{w.up.Host: w.goodPath}, RootCAs: w.srvCA.Pool}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			requireProblem := func(t *testing.T, err error, level Level) {
				t.Helper()
				require.Error(t, err, "the policy was accepted")
				fhRequireText(t, err)
				fhRequireIsAny(t, err, b.want)
				pe := fhPolicyError(t, err)
				require.Len(t, pe.Problems, 1, "%v", err)
				p := pe.Problems[0]
				require.Equal(t, level, p.Level)
				require.Equal(t, b.field, p.Field)
				require.Equal(t, pattern, p.Pattern, "the pattern as written")
				fhRequireValue(t, p.Value, b.value)
				fhRequireIsAny(t, p.Err, b.want)
				require.NotContains(t, err.Error(), "-----BEGIN", "PEM text reached an error")
			}
			t.Run("New", func(t *testing.T) {
				p := b.policy(pattern)
				p.RootCAs = w.srvCA.Pool
				s, err := New(w.storeB, p)
				if err == nil {
					s.Close()
				}
				requireProblem(t, err, LevelGateway)
			})
			t.Run("ForAPI", func(t *testing.T) {
				gw := newSelector(t, w.storeB, good)
				a, err := gw.ForAPI(b.policy(pattern))
				if err == nil {
					a.Close()
				}
				requireProblem(t, err, LevelAPI)
			})
			t.Run("Update", func(t *testing.T) {
				gw := newSelector(t, w.storeB, good)
				require.Equal(t, w.good.ID(), mustGet(t, gw.RoundTripper(), w.up.URL).certID)
				p := b.policy(pattern)
				p.RootCAs = w.srvCA.Pool
				if p.Certificates == nil {
					p.Certificates = Map{}
				}
				p.Certificates[w.up.Host] = w.good2Path // would change the certificate if it were taken
				requireProblem(t, gw.Update(p), LevelGateway)
				closeIdle(t, gw.RoundTripper())
				require.Equal(t, w.good.ID(), mustGet(t, gw.RoundTripper(), w.up.URL).certID,
					"after a refused Update, a request did not get the old policy's certificate")
			})
			t.Run("Update of an API selector", func(t *testing.T) {
				gw := newSelector(t, w.storeB, Policy{RootCAs: w.srvCA.Pool})
				api := forAPI(t, gw, Policy{Certificates: Map{w.up.Host: w.goodPath}})
				p := b.policy(pattern)
				if p.Certificates == nil {
					p.Certificates = Map{}
				}
				p.Certificates[w.up.Host] = w.good2Path
				requireProblem(t, api.Update(p), LevelAPI)
				require.Equal(t, w.good.ID(), mustGet(t, api.RoundTripper(), w.up.URL).certID,
					"after a refused Update, a request did not get the old policy's certificate")
			})
		})
	}
}

// §3: with several problems in one policy, one *PolicyError lists every
// one, with its level, field, pattern and value; errors.Is matches the
// sentinel of each.
func TestFirstHourFailFastListsEveryProblem(t *testing.T) {
	w := newFHWorld(t)
	type want struct {
		fhBadValue
		pattern string
	}
	build := func(extra ...fhBadValue) (Policy, map[string]want) {
		p := Policy{Certificates: Map{}, PinnedPublicKeys: Map{}, RootCAs: w.srvCA.Pool}
		wants := map[string]want{}
		for i, b := range append(w.checkProblems(), extra...) {
			// Mixed case: Pattern is the pattern as written.
			pattern := fmt.Sprintf("Problem-%d.Example.COM", i)
			if b.field == "Certificates" {
				p.Certificates[pattern] = b.value
			} else {
				p.PinnedPublicKeys[pattern] = b.value
			}
			wants[pattern] = want{b, pattern}
		}
		return p, wants
	}
	check := func(t *testing.T, err error, level Level, wants map[string]want) {
		t.Helper()
		require.Error(t, err, "the policy was accepted")
		fhRequireText(t, err)
		pe := fhPolicyError(t, err)
		var got []string
		for _, p := range pe.Problems {
			got = append(got, p.Pattern)
		}
		require.Len(t, pe.Problems, len(wants), "problems listed for patterns %v; error: %v", got, err)
		seen := map[string]bool{}
		for _, p := range pe.Problems {
			wt, ok := wants[p.Pattern]
			require.True(t, ok, "a problem for an unexpected pattern %q", p.Pattern)
			require.False(t, seen[p.Pattern], "pattern %q listed twice", p.Pattern)
			seen[p.Pattern] = true
			require.Equal(t, level, p.Level, "%s", wt.name)
			require.Equal(t, wt.field, p.Field, "%s", wt.name)
			fhRequireValue(t, p.Value, wt.value)
			fhRequireIsAny(t, p.Err, wt.want)
			require.Contains(t, err.Error(), strconv.Quote(wt.pattern), "the error names pattern %s", wt.pattern)
		}
		for _, wt := range wants {
			fhRequireIsAny(t, err, wt.want)
		}
		for _, s := range []error{ErrNotFound, ErrNoPrivateKey, ErrExpired, ErrDecrypt} {
			require.ErrorIs(t, err, s)
		}
		require.NotContains(t, err.Error(), "-----BEGIN", "PEM text reached an error")
	}
	via := map[string]func(t *testing.T, p Policy) (error, Level){
		"New": func(t *testing.T, p Policy) (error, Level) {
			s, err := New(w.storeB, p)
			if err == nil {
				s.Close()
			}
			return err, LevelGateway
		},
		"ForAPI": func(t *testing.T, p Policy) (error, Level) {
			gw := newSelector(t, w.storeB, Policy{RootCAs: w.srvCA.Pool})
			a, err := gw.ForAPI(p)
			if err == nil {
				a.Close()
			}
			return err, LevelAPI
		},
		"Update": func(t *testing.T, p Policy) (error, Level) {
			gw := newSelector(t, w.storeB, Policy{RootCAs: w.srvCA.Pool})
			return gw.Update(p), LevelGateway
		},
	}
	for name, fn := range via {
		t.Run(name, func(t *testing.T) {
			p, wants := build()
			err, level := fn(t, p)
			check(t, err, level, wants)
		})
		t.Run(name+" with a malformed value among them", func(t *testing.T) {
			// A value that parsing refuses (an ID in upper case), with the
			// values that only loading refuses.
			p, wants := build(fhBadValue{"upper-case store ID", "Certificates", strings.ToUpper(w.keyedID), []error{ErrInvalidValue}})
			err, level := fn(t, p)
			check(t, err, level, wants)
			require.ErrorIs(t, err, ErrInvalidValue)
		})
	}
}

// §3: "ForAPI checks the API's values only": a gateway value broken after
// New does not fail ForAPI, and an API's broken value is reported at the
// API level, alone.
func TestFirstHourForAPIChecksOnlyTheAPIsValues(t *testing.T) {
	w := newFHWorld(t)
	gwPath := writeFile(t, t.TempDir(), "gateway.pem", w.good.PEM())
	gw := newSelector(t, nil, Policy{Certificates: Map{"gw.example.com": gwPath}, RootCAs: w.srvCA.Pool})
	require.NoError(t, os.Remove(gwPath))

	a, err := gw.ForAPI(Policy{Certificates: Map{w.up.Host: w.good2Path}})
	require.NoError(t, err, "ForAPI checked a gateway value")
	require.Equal(t, w.good2.ID(), mustGet(t, a.RoundTripper(), w.up.URL).certID)
	a.Close()

	_, err = gw.ForAPI(Policy{Certificates: Map{"Api.Example.COM": w.missingPath}})
	require.ErrorIs(t, err, ErrNotFound)
	fhRequireText(t, err)
	pe := fhPolicyError(t, err)
	require.Len(t, pe.Problems, 1, "%v", err)
	require.Equal(t, LevelAPI, pe.Problems[0].Level)
	require.Equal(t, "Api.Example.COM", pe.Problems[0].Pattern)
	require.NotContains(t, err.Error(), gwPath, "ForAPI reported a gateway value")
}

// §1: values that look like an ID or a pin written the wrong way are never
// read as file paths: each is an error wrapping ErrInvalidValue that says
// what was meant. A file of that very name exists in the working directory,
// so a value read as a path would be accepted.
func TestFirstHourNearMissValuesAreNotPaths(t *testing.T) {
	ca := newCA(t, "clients")
	leaf := clientLeaf(t, ca, "client")
	id := leaf.ID()
	sum := sha1.Sum(leaf.Cert.Raw)
	sha1Hex := hex.EncodeToString(sum[:])
	pinB64 := strings.TrimPrefix(pinFor(leaf.Cert), "sha256//")
	block, _ := pem.Decode(leaf.CertPEM)
	require.NotNil(t, block)
	derB64 := base64.StdEncoding.EncodeToString(block.Bytes)
	// The body of the leaf's PEM block, as pasted without its armour lines.
	lines := strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(block))), "\n")
	bodyLines := strings.Join(lines[1:len(lines)-1], "\n")
	keyBlock, _ := pem.Decode(leaf.KeyPEM)
	require.NotNil(t, keyBlock)
	keyB64 := base64.StdEncoding.EncodeToString(keyBlock.Bytes)

	cases := []struct {
		name    string
		field   string
		value   string
		says    []string // the message contains each
		secret  string   // the message must not contain it
		anyCase bool     // compare says case-insensitively
	}{
		{"upper-case ID", "Certificates", strings.ToUpper(id), []string{id}, "", false},
		{"upper-case ID as a pin", "PinnedPublicKeys", strings.ToUpper(id), []string{id}, "", false},
		{"openssl fingerprint with colons", "Certificates", fhColonHex(mustHex(t, id)), []string{id}, "", false},
		{"openssl fingerprint with its prefix", "Certificates", "SHA256 Fingerprint=" + fhColonHex(mustHex(t, id)), []string{id}, "", false},
		{"openssl 3 fingerprint with its prefix", "Certificates", "sha256 Fingerprint=" + fhColonHex(mustHex(t, id)), []string{id}, "", false},
		{"openssl fingerprint as a pin", "PinnedPublicKeys", fhColonHex(mustHex(t, id)), []string{id}, "", false},
		{"63 hex digits", "Certificates", id[:63], []string{"64"}, "", false},
		// 65 hex digits are an ID behind a one-character organisation
		// prefix, by the contract's rule (§1): not a near miss.
		{"63 hex digits as a pin", "PinnedPublicKeys", id[:63], []string{"64"}, "", false},
		{"SHA-1 fingerprint", "Certificates", sha1Hex, []string{"sha-1", "sha-256"}, "", true},
		{"SHA-1 fingerprint with colons", "Certificates", fhColonHex(sum[:]), []string{"sha-1", "sha-256"}, "", true},
		{"sha256/ with one slash", "PinnedPublicKeys", "sha256/" + pinB64, []string{"sha256//"}, "", false},
		{"SHA256// in upper case", "PinnedPublicKeys", "SHA256//" + pinB64, []string{"sha256//"}, "", false},
		{"a pin in Certificates", "Certificates", "sha256//" + pinB64, []string{"PinnedPublicKeys"}, "", false},
		{"pins separated by a semicolon", "PinnedPublicKeys", "sha256//" + pinB64 + ";" + "sha256//" + pinB64, []string{"comma"}, "", false},
		{"base64 DER of a certificate", "Certificates", derB64, []string{"PEM"}, derB64, false},
		{"base64 body of a certificate, PEM lines", "Certificates", bodyLines, []string{"PEM"}, bodyLines[:60], false},
		{"base64 DER of a certificate as a pin", "PinnedPublicKeys", derB64, []string{"PEM"}, derB64, false},
		{"base64 DER of a private key", "Certificates", keyB64, []string{"PEM"}, keyB64, false},
	}
	// A file under each name, in the working directory, holding a usable
	// certificate and key: reading one would make the policy valid.
	t.Chdir(t.TempDir())
	for _, c := range cases {
		if dir := filepath.Dir(c.value); dir != "." {
			if os.MkdirAll(dir, 0o700) != nil {
				continue
			}
		}
		_ = os.WriteFile(c.value, leaf.PEM(), 0o600) // best effort: some names are too long
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Policy{Certificates: Map{"near-miss.example.com": c.value}}
			if c.field == "PinnedPublicKeys" {
				p = Policy{PinnedPublicKeys: Map{"near-miss.example.com": c.value}}
			}
			s, err := New(nil, p)
			if err == nil {
				s.Close()
			}
			require.Error(t, err, "the value was accepted (read as a file path?)")
			require.ErrorIs(t, err, ErrInvalidValue)
			fhRequireText(t, err)
			pe := fhPolicyError(t, err)
			require.Len(t, pe.Problems, 1)
			require.Equal(t, c.field, pe.Problems[0].Field)
			msg := err.Error()
			for _, s := range c.says {
				if c.anyCase {
					require.Contains(t, strings.ToLower(msg), strings.ToLower(s), "the error does not say what was meant")
				} else {
					require.Contains(t, msg, s, "the error does not say what was meant")
				}
			}
			if c.secret != "" {
				require.NotContains(t, msg, c.secret, "the value's text reached the error")
			}
		})
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// §1: a real file path that merely contains hex is still a file path.
func TestFirstHourHexInAPathIsStillAPath(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	leaf := clientLeaf(t, cliCA, "client")
	server := serverLeaf(t, srvCA, "up")
	up := tlsUpstream(t, server, cliCA)
	id := leaf.ID()
	dir := t.TempDir()
	for _, name := range []string{id + ".pem", id, strings.ToUpper(id) + ".pem", strings.ToUpper(id)} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, dir, name, leaf.PEM())
			pinPath := writeFile(t, t.TempDir(), server.ID()+filepath.Ext(name), server.CertPEM)
			sel := newSelector(t, nil, Policy{
				Certificates:     Map{up.Host: path},
				PinnedPublicKeys: Map{up.Host: pinPath},
				RootCAs:          srvCA.Pool,
			})
			require.Equal(t, id, mustGet(t, sel.RoundTripper(), up.URL).certID)
		})
	}
}

// fhRequest makes a GET request for url.
func fhRequest(t testing.TB, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return req
}

// fhRoundTrip sends req through rt and closes the response, if any.
func fhRoundTrip(rt http.RoundTripper, req *http.Request) error {
	resp, err := rt.RoundTrip(req)
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			return fmt.Errorf("status %d, no error", resp.StatusCode)
		}
	}
	return err
}

// §3 error text: every error the package returns starts with "mtls: ",
// holds it once, and wraps its cause.
func TestFirstHourErrorText(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	good, other := clientLeaf(t, cliCA, "good"), clientLeaf(t, cliCA, "other")
	expired := expiredLeaf(t, cliCA, "expired")
	server, wrong := serverLeaf(t, srvCA, "pinned"), serverLeaf(t, srvCA, "wrong")
	pinned := tlsUpstream(t, server, nil)
	presented := pinFor(server.Cert)

	mem := newStore(t)
	delID := add(t, mem, other.PEM())
	dir := t.TempDir()
	expPath := writeFile(t, dir, "expires.pem", good.PEM())
	noKeyPath := writeFile(t, dir, "nokey.pem", good.PEM())
	sel := newSelector(t, mem, Policy{
		Certificates: Map{
			"deleted.test": delID,
			"expired.test": expPath,
			"nokey.test":   noKeyPath,
		},
		PinnedPublicKeys: Map{pinned.Host: pinFor(wrong.Cert)},
		RootCAs:          srvCA.Pool,
	})
	del(t, mem, delID)
	replaceFile(t, expPath, expired.PEM())
	replaceFile(t, noKeyPath, good.CertPEM)
	api := forAPI(t, sel, Policy{})
	closed, err := New(nil, Policy{})
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	goodTr, err := sel.TransportFor("good.test")
	require.NoError(t, err)

	fsDir := t.TempDir()
	fsA, err := NewFileStore(fsDir, []byte("secret A"))
	require.NoError(t, err)
	t.Cleanup(func() { fsA.Close() })
	fsID := add(t, fsA, good.PEM())
	fsB, err := NewFileStore(fsDir, []byte("secret B"))
	require.NoError(t, err)
	t.Cleanup(func() { fsB.Close() })
	fsNoSecret, err := NewFileStore(t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { fsNoSecret.Close() })
	fsClosed, err := NewFileStore(t.TempDir(), []byte("s"))
	require.NoError(t, err)
	require.NoError(t, fsClosed.Close())
	notADir := writeFile(t, t.TempDir(), "file", []byte("x"))
	unknown := Fingerprint([]byte("unknown"))

	cases := []struct {
		name string
		err  func() error
		want error // nil: no sentinel applies
	}{
		{"New: missing file", func() error {
			_, err := New(nil, Policy{Certificates: Map{"a.test": filepath.Join(dir, "missing.pem")}})
			return err
		}, ErrNotFound},
		{"New: invalid pattern", func() error {
			_, err := New(nil, Policy{Certificates: Map{"https://a.test/": good.ID()}})
			return err
		}, ErrInvalidPattern},
		{"New: invalid pin pattern", func() error {
			_, err := New(nil, Policy{PinnedPublicKeys: Map{"a*.test": presented}})
			return err
		}, ErrInvalidPattern},
		{"New: near-miss value", func() error {
			_, err := New(nil, Policy{Certificates: Map{"a.test": strings.ToUpper(good.ID())}})
			return err
		}, ErrInvalidValue},
		{"New: base with DialTLSContext", func() error {
			base := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return nil, nil }}
			_, err := New(nil, Policy{}, WithBaseTransport(base))
			return err
		}, nil},
		{"Update: missing file", func() error {
			return sel.Update(Policy{Certificates: Map{"a.test": filepath.Join(dir, "missing.pem")}})
		}, ErrNotFound},
		{"Update: invalid pattern", func() error {
			return sel.Update(Policy{Certificates: Map{"a.test:99999": good.ID()}})
		}, ErrInvalidPattern},
		{"Update: closed", func() error { return closed.Update(Policy{}) }, ErrClosed},
		{"ForAPI: missing file", func() error {
			_, err := sel.ForAPI(Policy{Certificates: Map{"a.test": filepath.Join(dir, "missing.pem")}})
			return err
		}, ErrNotFound},
		{"ForAPI: of an API selector", func() error { _, err := api.ForAPI(Policy{}); return err }, nil},
		{"ForAPI: closed", func() error { _, err := closed.ForAPI(Policy{}); return err }, ErrClosed},
		{"RoundTrip: certificate deleted", func() error {
			return fhRoundTrip(sel.RoundTripper(), fhRequest(t, "https://deleted.test/"))
		}, ErrNotFound},
		{"RoundTrip: certificate expired", func() error {
			return fhRoundTrip(sel.RoundTripper(), fhRequest(t, "https://expired.test/"))
		}, ErrExpired},
		{"RoundTrip: no private key", func() error {
			return fhRoundTrip(sel.RoundTripper(), fhRequest(t, "https://nokey.test/"))
		}, ErrNoPrivateKey},
		{"RoundTrip: IPv6 host without brackets", func() error {
			req := fhRequest(t, "https://a.test/")
			req.URL.Host = "::1:8443"
			return fhRoundTrip(sel.RoundTripper(), req)
		}, nil},
		{"RoundTrip: no URL", func() error {
			return fhRoundTrip(sel.RoundTripper(), &http.Request{Method: http.MethodGet})
		}, nil},
		{"RoundTrip: closed", func() error {
			return fhRoundTrip(closed.RoundTripper(), fhRequest(t, "https://a.test/"))
		}, ErrClosed},
		{"TransportFor: certificate deleted", func() error { _, err := sel.TransportFor("deleted.test"); return err }, ErrNotFound},
		{"TransportFor: invalid host", func() error { _, err := sel.TransportFor("a.test:0x10"); return err }, nil},
		{"TransportFor's transport: another host", func() error {
			return fhRoundTrip(goodTr, fhRequest(t, "https://other.test/"))
		}, nil},
		{"TransportFor's transport: http", func() error {
			return fhRoundTrip(goodTr, fhRequest(t, "http://good.test/"))
		}, nil},
		{"TLSConfigFor: expired", func() error { _, err := sel.TLSConfigFor("expired.test"); return err }, ErrExpired},
		{"TLSConfigFor: invalid host", func() error { _, err := sel.TLSConfigFor("a..test"); return err }, nil},
		{"MemoryStore Add: garbage", func() error { _, err := mem.Add(ctx, []byte("garbage")); return err }, nil},
		{"MemoryStore Add: key without secret", func() error {
			_, err := NewMemoryStore(nil).Add(ctx, good.PEM())
			return err
		}, nil},
		{"MemoryStore Add: expired", func() error { _, err := mem.Add(ctx, expired.PEM()); return err }, ErrExpired},
		{"MemoryStore Add: cancelled context", func() error { _, err := mem.Add(cancelled, good.PEM()); return err }, context.Canceled},
		{"MemoryStore Get: unknown", func() error { _, err := mem.Get(ctx, unknown); return err }, ErrNotFound},
		{"MemoryStore Get: malformed ID", func() error { _, err := mem.Get(ctx, "not-an-id"); return err }, ErrNotFound},
		{"MemoryStore Get: cancelled context", func() error { _, err := mem.Get(cancelled, unknown); return err }, context.Canceled},
		{"MemoryStore Delete: unknown", func() error { return mem.Delete(ctx, unknown) }, ErrNotFound},
		{"FileStore: empty directory name", func() error { _, err := NewFileStore("", nil); return err }, nil},
		{"FileStore: a file, not a directory", func() error { _, err := NewFileStore(notADir, nil); return err }, nil},
		{"FileStore Add: garbage", func() error { _, err := fsA.Add(ctx, []byte("garbage")); return err }, nil},
		{"FileStore Add: key without secret", func() error { _, err := fsNoSecret.Add(ctx, good.PEM()); return err }, nil},
		{"FileStore Add: key with the wrong secret", func() error { _, err := fsB.Add(ctx, other.PEM()); return err }, ErrDecrypt},
		{"FileStore Add: cancelled context", func() error { _, err := fsA.Add(cancelled, other.PEM()); return err }, context.Canceled},
		{"FileStore Get: unknown", func() error { _, err := fsA.Get(ctx, unknown); return err }, ErrNotFound},
		{"FileStore Get: wrong secret", func() error { _, err := fsB.Get(ctx, fsID); return err }, ErrDecrypt},
		{"FileStore Get: closed", func() error { _, err := fsClosed.Get(ctx, unknown); return err }, ErrClosed},
		{"FileStore Delete: unknown", func() error { return fsA.Delete(ctx, unknown) }, ErrNotFound},
		{"FileStore Delete: malformed ID", func() error { return fsA.Delete(ctx, "../kdf.json") }, ErrNotFound},
		{"NewResolver: invalid pattern", func() error { _, err := NewResolver(Map{"*:443": "x"}, nil); return err }, ErrInvalidPattern},
		{"NewResolver: duplicates", func() error {
			_, err := NewResolver(nil, Map{"A.test": "x", "a.test.": "y"})
			return err
		}, ErrInvalidPattern},
		{"NewCertificate: key of another certificate", func() error {
			_, err := NewCertificate([][]byte{good.Cert.Raw}, nil, other.Key)
			return err
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			require.Error(t, err)
			t.Logf("%v", err)
			fhRequireText(t, err)
			if c.want != nil {
				require.ErrorIs(t, err, c.want)
			}
		})
	}

	// A pin mismatch names the host and the presented key, once each,
	// however the connection is made.
	pinErrs := map[string]func() error{
		"RoundTripper": func() error { return fhRoundTrip(sel.RoundTripper(), fhRequest(t, pinned.URL)) },
		"TransportFor": func() error {
			tr, err := sel.TransportFor(pinned.Host)
			if err != nil {
				return err
			}
			return fhRoundTrip(tr, fhRequest(t, pinned.URL))
		},
		"TLSConfigFor": func() error {
			cfg, err := sel.TLSConfigFor(pinned.Host)
			if err != nil {
				return err
			}
			conn, err := tls.Dial("tcp", pinned.Addr, cfg)
			if err == nil {
				conn.Close()
			}
			return err
		},
	}
	for name, fn := range pinErrs {
		t.Run("pin mismatch through "+name, func(t *testing.T) {
			err := fn()
			require.ErrorIs(t, err, ErrPinMismatch)
			t.Logf("%v", err)
			fhRequireText(t, err)
			msg := err.Error()
			require.Equal(t, 1, strings.Count(msg, pinned.Host), "the host is not named once: %s", msg)
			require.Equal(t, 1, strings.Count(msg, presented), "the presented key is not named once: %s", msg)
			require.Zero(t, pinned.requests.Load())
		})
	}
}

// Zero values never panic: the zero and the nil Selector refuse with
// ErrClosed and connect nowhere; the zero and the nil Resolver match
// nothing; the zero MemoryStore works without a secret; the zero FileStore
// refuses with ErrClosed.
func TestFirstHourZeroValues(t *testing.T) {
	srvCA := newCA(t, "servers")
	server := serverLeaf(t, srvCA, "up")
	up := tlsUpstream(t, server, nil)

	for name, sel := range map[string]*Selector{"zero": {}, "nil": nil} {
		t.Run(name+" Selector", func(t *testing.T) {
			require.NotPanics(t, func() {
				rt := sel.RoundTripper()
				require.NotNil(t, rt)
				for _, url := range []string{up.URL, "http://" + up.Host + "/"} {
					resp, err := rt.RoundTrip(fhRequest(t, url))
					require.Nil(t, resp)
					require.ErrorIs(t, err, ErrClosed, url)
					fhRequireText(t, err)
				}
				_, err := get(rt, up.URL)
				require.ErrorIs(t, err, ErrClosed)
				closeIdle(t, rt)
				tr, err := sel.TransportFor(up.Host)
				require.Nil(t, tr)
				require.ErrorIs(t, err, ErrClosed)
				cfg, err := sel.TLSConfigFor(up.Host)
				require.Nil(t, cfg)
				require.ErrorIs(t, err, ErrClosed)
				a, err := sel.ForAPI(Policy{})
				require.Nil(t, a)
				require.ErrorIs(t, err, ErrClosed)
				require.ErrorIs(t, sel.Update(Policy{}), ErrClosed)
				require.NoError(t, sel.Close())
				require.NoError(t, sel.Close())
			})
			requireNoConnection(t, up)
		})
	}

	for name, r := range map[string]*Resolver{"zero": {}, "nil": nil} {
		t.Run(name+" Resolver", func(t *testing.T) {
			require.NotPanics(t, func() {
				for _, host := range []string{"example.com", "example.com:443", "[::1]:8443", "", "*"} {
					v, ok := r.Resolve(host)
					require.False(t, ok, host)
					require.Empty(t, v)
					m, ok := r.Match(host)
					require.False(t, ok, host)
					require.Equal(t, Match{}, m)
				}
			})
		})
	}

	t.Run("zero MemoryStore", func(t *testing.T) {
		ctx := context.Background()
		var m MemoryStore
		require.NotPanics(t, func() {
			ids, err := m.List(ctx)
			require.NoError(t, err)
			require.Empty(t, ids)
			stop := m.Notify(func(string) {})
			defer stop()
			id, err := m.Add(ctx, server.CertPEM)
			require.NoError(t, err)
			require.Equal(t, server.ID(), id)
			c, err := m.Get(ctx, id)
			require.NoError(t, err)
			require.Nil(t, c.TLS)
			keyID, err := m.Add(ctx, publicKeyPEM(t, server))
			require.NoError(t, err)
			_, err = m.Add(ctx, server.PEM())
			require.Error(t, err, "a private key was stored without a secret")
			fhRequireText(t, err)

			// Usable as the store of a selector: a pin by store ID.
			sel := newSelector(t, &m, Policy{PinnedPublicKeys: Map{up.Host: keyID + "," + id}, RootCAs: srvCA.Pool})
			mustGet(t, sel.RoundTripper(), up.URL)
			require.NoError(t, m.Delete(ctx, id))
		})
	})

	t.Run("zero FileStore", func(t *testing.T) {
		ctx := context.Background()
		var f FileStore
		require.NotPanics(t, func() {
			_, err := f.Add(ctx, server.CertPEM)
			require.ErrorIs(t, err, ErrClosed)
			fhRequireText(t, err)
			_, err = f.Get(ctx, server.ID())
			require.ErrorIs(t, err, ErrClosed)
			fhRequireText(t, err)
			_, err = f.Metadata(ctx, server.ID())
			require.ErrorIs(t, err, ErrClosed)
			_, err = f.List(ctx)
			require.ErrorIs(t, err, ErrClosed)
			err = f.Delete(ctx, server.ID())
			require.ErrorIs(t, err, ErrClosed)
			fhRequireText(t, err)
			stop := f.Notify(func(string) {})
			stop()

			// As the store of a selector: the policy error wraps ErrClosed.
			_, err = New(&f, Policy{Certificates: Map{"a.test": server.ID()}})
			require.ErrorIs(t, err, ErrClosed)
			fhRequireText(t, err)
			require.NoError(t, f.Close())
		})
	})
}

// §3 "Fail closed", reported: a request refused because its certificate was
// deleted, expired or lost its key is a FailedClosed event naming host,
// level, pattern, value (inline PEM by its hash) and the error.
func TestFirstHourFailedClosedEvents(t *testing.T) {
	srvCA, cliCA := newCA(t, "servers"), newCA(t, "clients")
	good := clientLeaf(t, cliCA, "good")
	expired := expiredLeaf(t, cliCA, "expired")
	store := newStore(t)

	cases := []struct {
		name  string
		level Level
		// value is mapped; breakIt makes it unusable after New.
		value func(t *testing.T) (value string, breakIt func())
		want  error
	}{
		{"store ID deleted", LevelGateway, func(t *testing.T) (string, func()) {
			id := add(t, store, good.PEM())
			return id, func() { del(t, store, id) }
		}, ErrNotFound},
		{"store ID deleted, API level", LevelAPI, func(t *testing.T) (string, func()) {
			id := add(t, store, good.PEM())
			return id, func() { del(t, store, id) }
		}, ErrNotFound},
		{"file replaced by an expired certificate", LevelGateway, func(t *testing.T) (string, func()) {
			path := writeFile(t, t.TempDir(), "client.pem", good.PEM())
			return path, func() { replaceFile(t, path, expired.PEM()) }
		}, ErrExpired},
		{"file replaced by a certificate without key", LevelGateway, func(t *testing.T) (string, func()) {
			path := writeFile(t, t.TempDir(), "client.pem", good.PEM())
			return path, func() { replaceFile(t, path, good.CertPEM) }
		}, ErrNoPrivateKey},
		{"inline PEM that expires", LevelAPI, func(t *testing.T) (string, func()) {
			short := issue(t, cliCA, mtlstest.Options{CommonName: "short-lived", NotAfter: time.Now().Add(3 * time.Second)})
			return string(short.PEM()), func() {
				deadline := time.Now().Add(waitFor)
				for !time.Now().After(short.Cert.NotAfter) {
					require.False(t, time.Now().After(deadline), "the certificate never expired")
					time.Sleep(50 * time.Millisecond)
				}
			}
		}, ErrExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
			const pattern = "127.0.0.1" // any port: the event's Host has the port, its Pattern not
			value, breakIt := c.value(t)
			var log eventLog
			m := Map{pattern: value}
			gwPolicy := Policy{RootCAs: srvCA.Pool}
			if c.level == LevelGateway {
				gwPolicy.Certificates = m
			}
			sel := newSelector(t, store, gwPolicy, WithEventHook(log.hook))
			if c.level == LevelAPI {
				sel = forAPI(t, sel, Policy{Certificates: m})
			}
			breakIt()
			_, err := get(sel.RoundTripper(), up.URL)
			require.ErrorIs(t, err, c.want)
			requireNoConnection(t, up)

			evs := log.of(FailedClosed, up.Host)
			require.NotEmpty(t, evs, "no FailedClosed event for %s; events:\n%s", up.Host, &log)
			e := evs[len(evs)-1]
			require.Equal(t, FailedClosed, e.Kind)
			require.Equal(t, up.Host, e.Host)
			require.Equal(t, c.level, e.Level)
			require.Equal(t, pattern, e.Pattern)
			fhRequireValue(t, e.Value, value)
			require.ErrorIs(t, e.Err, c.want)
			fhRequireText(t, e.Err)
			require.NotContains(t, e.Err.Error(), "-----BEGIN", "PEM text reached an event")
			require.Empty(t, e.CertificateID)
			require.Equal(t, "failed closed", FailedClosed.String())
		})
	}

	// The kinds that were there before are still reported.
	t.Run("CertificateChosen, PinMismatch and PoolRetired", func(t *testing.T) {
		up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), cliCA)
		pinned := tlsUpstream(t, serverLeaf(t, srvCA, "pinned"), nil)
		wrong := serverLeaf(t, srvCA, "wrong")
		id1, id2 := add(t, store, good.PEM()), add(t, store, clientLeaf(t, cliCA, "two").PEM())
		var log eventLog
		p := Policy{
			Certificates:     Map{up.Host: id1},
			PinnedPublicKeys: Map{pinned.Host: pinFor(wrong.Cert)},
			RootCAs:          srvCA.Pool,
		}
		sel := newSelector(t, store, p, WithEventHook(log.hook))
		mustGet(t, sel.RoundTripper(), up.URL)
		chosen := log.of(CertificateChosen, up.Host)
		require.NotEmpty(t, chosen, "events:\n%s", &log)
		require.Equal(t, id1, chosen[0].CertificateID)

		_, err := get(sel.RoundTripper(), pinned.URL)
		require.ErrorIs(t, err, ErrPinMismatch)
		mm := log.of(PinMismatch, pinned.Host)
		require.NotEmpty(t, mm, "events:\n%s", &log)
		require.ErrorIs(t, mm[0].Err, ErrPinMismatch)
		require.Contains(t, mm[0].Err.Error(), pinFor(pinned.Certificate()))

		p.Certificates = Map{up.Host: id2}
		require.NoError(t, sel.Update(p))
		retired := log.of(PoolRetired, up.Host)
		require.NotEmpty(t, retired, "events:\n%s", &log)
		require.Equal(t, id1, retired[0].CertificateID)
		require.Empty(t, log.of(FailedClosed, up.Host), "events:\n%s", &log)
	})
}

// fhBarrier holds each request until size requests of its round have
// arrived, so that every round has size requests in flight at once.
type fhBarrier struct {
	size  int
	mu    sync.Mutex
	n     int
	gates map[int]chan struct{}
}

func (b *fhBarrier) wait() bool {
	b.mu.Lock()
	round := b.n / b.size
	b.n++
	g := b.gates[round]
	if g == nil {
		g = make(chan struct{})
		b.gates[round] = g
	}
	if b.n%b.size == 0 {
		close(g)
	}
	b.mu.Unlock()
	select {
	case <-g:
		return true
	case <-time.After(waitFor):
		return false
	}
}

// §6 options: a pool keeps enough idle connections for concurrent load.
// With the default base, 16 concurrent requests repeated 5 times to one
// upstream reuse the connections of the first round; net/http's default of
// 2 idle connections per host would open most of them again. A base's own
// MaxIdleConnsPerHost is kept.
func TestFirstHourIdleConnectionsForConcurrentLoad(t *testing.T) {
	const concurrency, rounds = 16, 5
	srvCA := newCA(t, "servers")
	server := serverLeaf(t, srvCA, "up")
	run := func(t *testing.T, opts ...Option) int {
		b := &fhBarrier{size: concurrency, gates: map[int]chan struct{}{}}
		up := startUpstream(t, upstreamConfig{cert: server.TLS, handler: func(w http.ResponseWriter, r *http.Request) {
			if !b.wait() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		}})
		sel := newSelector(t, nil, Policy{RootCAs: srvCA.Pool}, opts...)
		rt := sel.RoundTripper()
		for round := range rounds {
			var wg sync.WaitGroup
			errs := make(chan error, concurrency)
			for i := range concurrency {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := get(rt, up.URLPath(fmt.Sprintf("/%d/%d", round, i)))
					switch {
					case err != nil:
						errs <- err
					case r.status != http.StatusOK:
						errs <- fmt.Errorf("round %d request %d: status %d", round, i, r.status)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		}
		require.EqualValues(t, concurrency*rounds, up.requests.Load())
		return up.newConns()
	}
	t.Run("default base", func(t *testing.T) {
		n := run(t)
		t.Logf("%d connections for %d rounds of %d concurrent requests", n, rounds, concurrency)
		require.LessOrEqual(t, n, concurrency+4, "the pool did not keep its idle connections")
	})
	t.Run("base with MaxIdleConnsPerHost 1", func(t *testing.T) {
		base := http.DefaultTransport.(*http.Transport).Clone()
		base.MaxIdleConnsPerHost = 1
		n := run(t, WithBaseTransport(base))
		t.Logf("%d connections for %d rounds of %d concurrent requests", n, rounds, concurrency)
		require.Greater(t, n, concurrency+4, "the base's MaxIdleConnsPerHost of 1 was not kept")
	})
}
