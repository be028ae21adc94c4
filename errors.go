package mtls

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// Errors reported by this package, matched with errors.Is. Errors returned
// by the package wrap one of them where one applies, name the host,
// pattern or value concerned, and never contain key material: inline PEM
// is named by its SHA-256. Every error's text starts with "mtls: " once.
var (
	// ErrNotFound: no certificate, key or file with that ID or path.
	ErrNotFound = errors.New("mtls: not found")
	// ErrPinMismatch: the upstream's leaf key matches none of the host's pins,
	// or the host has no usable pin left.
	ErrPinMismatch = errors.New("mtls: public key pin mismatch")
	// ErrNoPrivateKey: a client certificate was mapped that has no private key.
	ErrNoPrivateKey = errors.New("mtls: certificate has no private key")
	// ErrExpired: a certificate is outside its validity period.
	ErrExpired = errors.New("mtls: certificate expired")
	// ErrInvalidPattern: a host pattern of a Map is malformed.
	ErrInvalidPattern = errors.New("mtls: invalid host pattern")
	// ErrInvalidValue: a value of a Map cannot name a certificate or a pin,
	// such as a certificate ID written in upper case or a pin list separated
	// by semicolons. The error says what was probably meant.
	ErrInvalidValue = errors.New("mtls: invalid map value")
	// ErrDecrypt: a stored private key could not be decrypted, most often
	// because the store was opened with another secret.
	ErrDecrypt = errors.New("mtls: cannot decrypt private key")
	// ErrClosed: the Selector was closed, or the store was.
	ErrClosed = errors.New("mtls: closed")
)

// errorf returns an error of this package: "mtls: " and the message, in
// which error arguments lose their own "mtls: " prefix (certkit.Errorf).
func errorf(format string, args ...any) error { return certkit.Errorf(format, args...) }

// unprefixed returns err as its text reads without "mtls: ".
func unprefixed(err error) error { return certkit.Unprefixed(err) }

// fromKit returns an error of package certkit as this package reports it:
// prefixed once, with the sentinel of this package that means the same.
func fromKit(err error) error {
	return certkit.Sentinels{NotFound: ErrNotFound, Decrypt: ErrDecrypt, Expired: ErrExpired}.Wrap(err)
}

// reasoned is an error with the short reason that events give it.
type reasoned struct {
	reason string
	err    error
}

func (r reasoned) Error() string { return r.err.Error() }
func (r reasoned) Unwrap() error { return r.err }

func withReason(reason string, err error) error { return reasoned{reason, err} }

// reasonOf returns the short reason of an error, for Event.Reason.
func reasonOf(err error) string {
	var r reasoned
	switch {
	case err == nil:
		return ""
	case errors.As(err, &r):
		return r.reason
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrNoPrivateKey):
		return "no_private_key"
	case errors.Is(err, ErrDecrypt):
		return "decrypt"
	case errors.Is(err, ErrInvalidValue):
		return "invalid_value"
	case errors.Is(err, ErrPinMismatch):
		return "pin_mismatch"
	}
	return "unreadable"
}

// PolicyError is the error of [New], [Selector.ForAPI], [Selector.Update],
// [NewServer] and [Server.Update] for a policy whose values cannot be used
// now: it lists every problem.
// errors.Is matches the sentinel of each problem ([ErrNotFound],
// [ErrExpired], [ErrNoPrivateKey], [ErrDecrypt], [ErrInvalidValue],
// [ErrPinMismatch]).
type PolicyError struct {
	Problems []Problem
}

// Problem is one value of a policy that cannot be used.
type Problem struct {
	Level   Level  // the level of a Selector's policy; 0 for a Server's
	Field   string // the policy's field: "Certificates", "PinnedPublicKeys", "AllowedClients[2]", ...
	Pattern string // the pattern, as written; "" for a value of a list
	Value   string // the value as written; inline PEM by its SHA-256 instead
	Err     error  // why, wrapping a sentinel of this package
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString("mtls: ")
	if len(e.Problems) > 1 {
		b.WriteString(strconv.Itoa(len(e.Problems)) + " problems: ")
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns the error of each problem.
func (e *PolicyError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p.Err
	}
	return errs
}

// String names the problem: level, field, pattern, value and why.
func (p Problem) String() string {
	var b strings.Builder
	if p.Level != 0 {
		b.WriteString(p.Level.String() + " level ")
	}
	b.WriteString(p.Field)
	if p.Pattern != "" {
		b.WriteString("[" + quotePattern(p.Pattern) + "]")
	}
	if p.Value != "" {
		b.WriteString(" = " + describe(p.Value))
	}
	return b.String() + ": " + unprefixed(p.Err).Error()
}

// quotePattern names a pattern in an error: quoted, cut when long, and by
// its SHA-256 when it holds PEM or several lines, which may be a key pasted
// in the wrong place.
func quotePattern(p string) string {
	switch {
	case strings.Contains(p, "-----") || strings.ContainsAny(p, "\r\n"):
		return fmt.Sprintf("<text of %d bytes, sha256:%s, not a host: PEM pasted as a pattern?>", len(p), certkit.Fingerprint([]byte(p))[:16])
	case len(p) > 80:
		return strconv.Quote(p[:64]) + fmt.Sprintf("... (%d bytes)", len(p))
	}
	return strconv.Quote(p)
}
