package tykconf

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestIsPath: which certificate values are paths to resolve.
func TestIsPath(t *testing.T) {
	for v, want := range map[string]bool{
		"certs/a.pem": true, "a.pem": true, "../a.pem": true, "/abs/a.pem": false,
		id1: false, "org1" + id1: false, strings.ToUpper(id1): false, "AA:BB:CC": false,
		"sha256//abc/def=": false, "SHA256//x/y": false, "-----BEGIN CERTIFICATE-----\nx/y.z": false,
		strings.Repeat("MIIB/a+", 20): false, "plainname": false,
	} {
		assert.Equal(t, want, isPath(v), "isPath(%q)", v)
	}
}
