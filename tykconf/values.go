package tykconf

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// printable reports whether s has no space and no control character.
func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// parseDomain reads the domain of field (domain, control_api_hostname):
// lowercased, one trailing dot dropped, checked by checkDomain; "" when
// absent.
func parseDomain(file, field, raw string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(raw, "."))
	if d == "" {
		return "", nil
	}
	if err := checkDomain(d); err != nil {
		return "", &Error{File: file, Field: field, Err: err}
	}
	return d, nil
}

// checkDomain checks a domain as an APIPolicy's Domain: a host pattern
// without a port.
func checkDomain(d string) error {
	if strings.ContainsAny(d, "{}") {
		return fmt.Errorf("%q: domain templates ({name}) are not supported; write a host or *.host", d)
	}
	if _, err := mtls.NewResolver(mtls.Map{d: "x"}, nil); err != nil {
		return fmt.Errorf("%q is not a host name: %w", d, trimmed(err))
	}
	if i := strings.LastIndex(d, ":"); i >= 0 && !strings.HasSuffix(d, "]") && strings.Count(d, ":") == 1 || strings.Contains(d, "]:") {
		return fmt.Errorf("%q: a domain has no port (the gateway listens on listen_port)", d)
	}
	return nil
}

// tlsVersion checks a TLS version as Tyk writes it (769 to 772); 0 is
// absent.
func tlsVersion(file, field string, v uint16) (uint16, error) {
	switch v {
	case 0, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
		return v, nil
	}
	return 0, fieldError(file, field, "%d is not a TLS version (769: 1.0, 770: 1.1, 771: 1.2, 772: 1.3)", v)
}

// cipherSuites returns the IDs of cipher suites named as Go names them
// (case and spaces around ignored); nil for none.
func cipherSuites(file, field string, names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	byName := map[string]uint16{}
	for _, s := range tls.CipherSuites() {
		byName[s.Name] = s.ID
	}
	for _, s := range tls.InsecureCipherSuites() {
		byName[s.Name] = s.ID
	}
	ids := make([]uint16, 0, len(names))
	for i, n := range names {
		id, ok := byName[strings.ToUpper(strings.TrimSpace(n))]
		if !ok {
			return nil, fieldError(file, field+"["+strconv.Itoa(i)+"]", "%q is not a cipher suite Go knows", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
