package mtls

import (
	"os"
	"testing"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// TestMain lowers the Argon2id parameters for every test of the package:
// the production ones (64 MiB, 3 passes) make each derivation take a
// noticeable time, far more under -race. Tests that need the real ones set
// certkit.DefaultParams themselves.
func TestMain(m *testing.M) {
	certkit.DefaultParams = certkit.Params{Time: 1, Memory: 64, Threads: 1}
	os.Exit(m.Run())
}
