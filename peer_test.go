package mtls

import (
	"testing"

	"github.com/mtlsgo/mtls/internal/peertest"
)

// requirePeer returns the path of the program name that a test checks this
// package against: see peertest.Require.
func requirePeer(t testing.TB, name string) string {
	t.Helper()
	return peertest.Require(t, name)
}
