package tykconf

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// loadPool reads PEM files of CA certificates into a pool; nil for none.
func loadPool(file, field string, paths []string) (*x509.CertPool, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for i, p := range paths {
		f := field + "[" + strconv.Itoa(i) + "]"
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, &Error{File: file, Field: f, Err: pathError(err)}
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fieldError(file, f, "%s holds no PEM certificate", p)
		}
	}
	return pool, nil
}

// metadataStore is a CertStore that gives metadata without decrypting.
type metadataStore interface {
	Metadata(ctx context.Context, id string) (mtls.Metadata, error)
}

// leafInfo is what BuildServer needs of a server certificate.
type leafInfo struct{ DNSNames []string }

// readLeaf reads the leaf of a certificate value: a store ID, inline PEM or
// a file.
func readLeaf(ctx context.Context, store mtls.CertStore, v string) (leafInfo, error) {
	if isID(v) {
		return readStoredLeaf(ctx, store, v)
	}
	data := []byte(v)
	if !strings.Contains(v, "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(v); err != nil {
			return leafInfo{}, pathError(err)
		}
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return leafInfo{}, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return leafInfo{}, fmt.Errorf("the first certificate: %w", err)
			}
			return leafInfo{DNSNames: c.DNSNames}, nil
		}
	}
}

// readStoredLeaf reads the leaf of a store ID, from its metadata when the
// store gives them.
func readStoredLeaf(ctx context.Context, store mtls.CertStore, id string) (leafInfo, error) {
	if store == nil {
		return leafInfo{}, errors.New("a store ID, but there is no store")
	}
	if ms, ok := store.(metadataStore); ok {
		md, err := ms.Metadata(ctx, id)
		if err != nil {
			return leafInfo{}, trimmed(err)
		}
		return leafInfo{DNSNames: md.DNSNames}, nil
	}
	c, err := store.Get(ctx, id)
	if err != nil {
		return leafInfo{}, trimmed(err)
	}
	return leafInfo{DNSNames: c.DNSNames}, nil
}

// isID reports whether v is a store ID: 64 lowercase hex digits, optionally
// behind an organisation prefix of letters and digits.
func isID(v string) bool {
	if len(v) < 64 {
		return false
	}
	for _, c := range v[len(v)-64:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	for _, c := range v[:len(v)-64] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
