package mtls

import (
	"net"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// The host is what is dialled (semantics §3): a request's host is
// req.URL.Host, read exactly as net/http reads it to dial and to name the
// server, and then normalised (see Resolver.Resolve). Where the two readings
// could differ, the request is refused.

// hostKey is a normalised host: the name (an IPv6 literal without
// brackets) and the port.
type hostKey struct {
	name string
	port uint16
}

func (h hostKey) String() string { return net.JoinHostPort(h.name, strconv.Itoa(int(h.port))) }

// requestHost is a request's host, parsed once for every lookup of the
// request.
type requestHost struct {
	key    hostKey
	parsed hostmatch.Host
}

// parseRequestHost parses host, a req.URL.Host, into h. net/http splits a
// host at its last ':' when digits (or nothing) follow, and takes what is
// between '[' and ']' as the name: "::1:4000" is host "::1" on port 4000 to
// it, and "::1" is host ":" on port 1. So an IPv6 literal must be in
// brackets, and an empty port is refused rather than read as 443.
func parseRequestHost(host string, h *requestHost) error {
	if i := strings.IndexByte(host, ':'); i >= 0 && host[0] != '[' && strings.IndexByte(host[i+1:], ':') >= 0 {
		return errorf("invalid host %s: an IPv6 address must be in brackets, as in [::1]:8443 (net/http would dial %s)",
			quotePattern(host), quotePattern(dialledBy(host)))
	}
	if reason := h.parsed.Parse(host); reason != "" {
		return errorf("invalid host %s: %s", quotePattern(host), reason)
	}
	if name, _ := splitPort(host); h.parsed.IsIP() && strings.HasSuffix(name, ".") {
		return errorf("invalid host %s: an IP address with a trailing dot is a name that net/http looks up, not the address", quotePattern(host))
	}
	h.key = hostKey{h.parsed.Name(), h.parsed.Port()}
	if h.key.port == 0 {
		h.key.port = 443
	}
	return nil
}

// splitPort returns host without its ":port", if any.
func splitPort(host string) (name, port string) {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		return host[:i], host[i+1:]
	}
	return host, ""
}

// dialledBy returns what net/http would dial for a host of two or more
// colons outside brackets: the text before the last one, on the port after
// it.
func dialledBy(host string) string {
	i := strings.LastIndexByte(host, ':')
	name, port := host[:i], host[i+1:]
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(name, port)
}
