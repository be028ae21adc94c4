package mtls

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mtlsgo/mtls/internal/certkit"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openssl runs the openssl command with args and returns its output.
func openssl(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	require.NoError(t, err, "openssl %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// opensslFingerprint is `openssl x509 -noout -fingerprint -sha256` of the
// first certificate in file, colons removed, lowercased.
func opensslFingerprint(t *testing.T, bin, file string) string {
	t.Helper()
	out := openssl(t, bin, "x509", "-noout", "-fingerprint", "-sha256", "-in", file)
	_, fp, ok := strings.Cut(strings.TrimSpace(out), "=")
	require.True(t, ok, "unexpected openssl output %q", out)
	return strings.ToLower(strings.ReplaceAll(fp, ":", ""))
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// TestIDsMatchOpenSSL checks certificate IDs against `openssl x509
// -fingerprint -sha256`, public key IDs and pins against the SHA-256 of the
// DER openssl writes for the key, and that openssl reads the leaf of a
// FileStore's file.
func TestIDsMatchOpenSSL(t *testing.T) {
	bin := requirePeer(t, "openssl")
	ctx := context.Background()
	dir := t.TempDir()
	file, err := NewFileStore(dir, []byte("secret"))
	require.NoError(t, err)
	defer file.Close()
	mem := NewMemoryStore([]byte("secret"))
	ls := leaves(t)
	for _, name := range []string{"p256", "rsa", "ed25519"} {
		l := ls[name]
		t.Run(name, func(t *testing.T) {
			want := opensslFingerprint(t, bin, writeTemp(t, "leaf.pem", l.PEM()))
			assert.Equal(t, want, Fingerprint(l.Cert.Raw))
			for sname, s := range map[string]CertStore{"Memory": mem, "File": file} {
				id, err := s.Add(ctx, l.PEM())
				require.NoError(t, err)
				assert.Equal(t, want, id, "%s store ID", sname)
			}
			// openssl reads the store's file as a certificate.
			assert.Equal(t, want, opensslFingerprint(t, bin, filepath.Join(dir, want+".pem")))

			// A bare public key: ID = SHA-256 of the SPKI DER, as openssl writes it.
			pubPEM := openssl(t, bin, "x509", "-noout", "-pubkey", "-in", writeTemp(t, "leaf.pem", l.CertPEM))
			der := filepath.Join(t.TempDir(), "pub.der")
			openssl(t, bin, "pkey", "-pubin", "-in", writeTemp(t, "pub.pem", []byte(pubPEM)), "-outform", "DER", "-out", der)
			dgst := strings.Fields(openssl(t, bin, "dgst", "-sha256", "-r", der))[0]
			id, err := mem.Add(ctx, []byte(pubPEM))
			require.NoError(t, err)
			assert.Equal(t, dgst, id, "public key ID")
			c, err := mem.Get(ctx, id)
			require.NoError(t, err)
			bin32 := openssl(t, bin, "dgst", "-sha256", "-binary", der)
			pin := "sha256//" + base64.StdEncoding.EncodeToString([]byte(bin32))
			assert.Equal(t, pin, c.Pin(), "pin of the public key")
			cc, err := mem.Get(ctx, l.ID())
			require.NoError(t, err)
			assert.Equal(t, pin, cc.Pin(), "pin of the certificate")
		})
	}
}

// TestAddAcceptsOpenSSLKeys adds certificates and keys in the formats
// openssl writes: PKCS#1 (genrsa -traditional), SEC 1 with EC PARAMETERS
// (ecparam -genkey), PKCS#8 (genpkey), and rejects its encrypted keys.
func TestAddAcceptsOpenSSLKeys(t *testing.T) {
	bin := requirePeer(t, "openssl")
	ctx := context.Background()
	s := NewMemoryStore([]byte("secret"))
	for _, tt := range []struct {
		name    string
		gen     []string // "KEY" stands for the output file
		keyType string
	}{
		{"PKCS1RSA", []string{"genrsa", "-traditional", "-out", "KEY", "2048"}, "RSA PRIVATE KEY"},
		{"SEC1P256", []string{"ecparam", "-name", "prime256v1", "-genkey", "-out", "KEY"}, "EC PRIVATE KEY"},
		{"PKCS8Ed25519", []string{"genpkey", "-algorithm", "ed25519", "-out", "KEY"}, "PRIVATE KEY"},
		{"PKCS8P384", []string{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "KEY"}, "PRIVATE KEY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			key, cert := filepath.Join(tmp, "key.pem"), filepath.Join(tmp, "cert.pem")
			args := slices.Clone(tt.gen)
			args[slices.Index(args, "KEY")] = key
			openssl(t, bin, args...)
			openssl(t, bin, "req", "-x509", "-new", "-key", key, "-subj", "/CN=openssl "+tt.name, "-days", "1", "-out", cert)
			keyPEM, err := os.ReadFile(key)
			require.NoError(t, err)
			certPEM, err := os.ReadFile(cert)
			require.NoError(t, err)
			require.Contains(t, string(keyPEM), "-----BEGIN "+tt.keyType+"-----")

			id, err := s.Add(ctx, append(certPEM, keyPEM...))
			require.NoError(t, err)
			assert.Equal(t, opensslFingerprint(t, bin, cert), id)
			c, err := s.Get(ctx, id)
			require.NoError(t, err)
			require.NotNil(t, c.TLS)
			assert.Equal(t, "CN=openssl "+tt.name, c.Subject)

			// The same key, encrypted by openssl: refused, with the reason.
			enc := openssl(t, bin, "pkey", "-in", key, "-aes256", "-passout", "pass:x")
			require.Contains(t, enc, "ENCRYPTED PRIVATE KEY")
			_, err = s.Add(ctx, append(certPEM, enc...))
			assert.ErrorContains(t, err, "encrypted private keys are not supported")
		})
	}
	t.Run("LegacyEncryptedRSA", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "key.pem")
		openssl(t, bin, "genrsa", "-traditional", "-out", key, "2048")
		enc := openssl(t, bin, "rsa", "-in", key, "-aes256", "-passout", "pass:x", "-traditional")
		b, _ := pem.Decode([]byte(enc[strings.Index(enc, "-----BEGIN"):]))
		require.NotNil(t, b)
		require.Contains(t, b.Headers["Proc-Type"], "ENCRYPTED")
		_, err := certkit.Parse(append(leaves(t)["rsa"].CertPEM, enc...))
		assert.ErrorIs(t, err, certkit.ErrEncrypted)
	})
}
