package mtls

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// requirePeer returns the path of the program name, which a test checks
// this package against (openssl, curl, ...). When it is not on PATH the
// test is skipped, loudly: the message goes to stderr as well as to the
// test log, so that a run without -v shows it too. With MTLS_REQUIRE_PEERS=1
// in the environment (as in CI) a missing program fails the test instead.
func requirePeer(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("!!! %s: %s is not on PATH, so the interoperability checks against it DID NOT RUN "+
		"(install %s; set MTLS_REQUIRE_PEERS=1 to make this a failure) !!!", t.Name(), name, name)
	if os.Getenv("MTLS_REQUIRE_PEERS") == "1" {
		t.Fatal(msg)
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}
