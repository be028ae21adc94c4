package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzPinList parses arbitrary pin lists: no panic; a list that parses
// resolves to at most one hash per item, every sha256// item among them; and
// verification of an arbitrary key never panics and names ErrPinMismatch
// when it fails.
func FuzzPinList(f *testing.F) {
	pin := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return pinPrefix + base64.StdEncoding.EncodeToString(sum[:])
	}
	for _, seed := range []string{
		pin("a"),
		pin("a") + " , " + pin("b"),
		pin("a") + ",," + pin("b"),
		"sha256//",
		"sha256//not base64!",
		"sha256//" + base64.StdEncoding.EncodeToString(make([]byte, 31)),
		strings.Repeat("a", 64),
		"org1" + strings.Repeat("0", 64),
		"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"/nonexistent/pin.pem",
		" ",
		",",
	} {
		f.Add(seed, []byte("spki"))
	}
	f.Fuzz(func(t *testing.T, value string, spki []byte) {
		items, err := parsePinList(value)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "mtls: ") || strings.Count(err.Error(), "mtls: ") != 1 {
				t.Fatalf("error without the mtls: prefix once: %v", err)
			}
			return
		}
		want := 0
		for item := range strings.SplitSeq(value, ",") {
			if strings.HasPrefix(strings.TrimSpace(item), pinPrefix) {
				want++
			}
		}
		ps := resolvePins(context.Background(), nil, items)
		if len(ps.hashes) > len(items) {
			t.Fatalf("%d hashes from %d items", len(ps.hashes), len(items))
		}
		if want > 0 && len(ps.hashes) == 0 {
			t.Fatalf("%d sha256// items resolved to no pin", want)
		}
		if err := ps.verify("host:443", &x509.Certificate{RawSubjectPublicKeyInfo: spki}); err != nil && !strings.Contains(err.Error(), ErrPinMismatch.Error()) {
			t.Fatalf("verify: %v", err)
		}
	})
}
