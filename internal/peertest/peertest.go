// Package peertest finds the real programs that the tests of this
// repository check the library against (openssl, curl, nginx,
// redis-server), with one rule for every module: a missing program skips
// the test loudly, or fails it when MTLS_REQUIRE_PEERS=1 (as .ci/run sets).
package peertest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of the program name. When it is not on PATH the
// test is skipped, loudly: the message goes to stderr as well as to the
// test log, so that a run without -v shows it too. With MTLS_REQUIRE_PEERS=1
// in the environment a missing program fails the test instead.
func Require(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("!!! %s: %s is not on PATH, so the checks against it DID NOT RUN "+
		"(install %s; set MTLS_REQUIRE_PEERS=1 to make this a failure) !!!", t.Name(), name, name)
	if os.Getenv("MTLS_REQUIRE_PEERS") == "1" {
		t.Fatal(msg)
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}
