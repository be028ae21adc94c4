package gateway

import (
	"errors"
	"log"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mtlsgo/mtls"
)

// TestServerEventQuotesTheSNI: the SNI of a refused handshake is the
// client's, and is logged quoted: a line break in it cannot start a line.
func TestServerEventQuotesTheSNI(t *testing.T) {
	var buf syncBuffer
	gw := &gateway{log: log.New(&buf, "", 0)}
	sni := "evil.test\nrefused client=- sni=forged:443"
	gw.serverEvent(mtls.Event{Kind: mtls.ClientRefused, Host: sni, API: "billing", Err: errors.New("no client certificate")})
	gw.serverEvent(mtls.Event{Kind: mtls.FailedClosed, Host: sni, Pattern: "*", Value: "x.pem", Err: errors.New("not found")})
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	assert.Len(t, lines, 2, buf.String())
	assert.Contains(t, lines[0], `sni="evil.test\nrefused client=- sni=forged:443" api=billing`)
	assert.Contains(t, lines[1], `sni="evil.test\nrefused client=- sni=forged:443" cannot be used`)
}

func TestHasDotSegment(t *testing.T) {
	for p, want := range map[string]bool{
		"": false, "/": false, "/a/b": false, "/a/..b": false, "/a/b..": false, "/a/.b/": false, "/...": false,
		"/.": true, "/..": true, "/a/./b": true, "/a/../b": true, "/a/..": true, "/a/.": true, "..": true,
		`/a\..\b`: true, `/a/..\b`: true, `\..`: true, "/a//b": false,
	} {
		assert.Equal(t, want, hasDotSegment(p), "%q", p)
	}
}
