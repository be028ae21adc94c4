package certkit

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of every store, and of package mtls, start with "mtls: " once. This
// file holds what makes them so, for the core and for modules of their own.

// Errorf returns an error whose text is "mtls: " and the message, in which
// error arguments lose their own "mtls: " prefix, so that the text has it
// once; they stay in the chain for errors.Is and errors.As.
func Errorf(format string, args ...any) error {
	for i, a := range args {
		if err, ok := a.(error); ok {
			args[i] = Unprefixed(err)
		}
	}
	return fmt.Errorf("mtls: "+format, args...)
}

// Unprefixed returns err with the text it has without its "mtls: ", and err
// in its chain.
func Unprefixed(err error) error { return trimmed{err, "mtls: "} }

// trimmed is err whose text loses a leading prefix; err stays in the chain.
type trimmed struct {
	err    error
	prefix string
}

func (t trimmed) Error() string { return strings.TrimPrefix(t.err.Error(), t.prefix) }
func (t trimmed) Unwrap() error { return t.err }

// Sentinels are the errors of package mtls that the sentinels of this
// package mean, for a store to report this package's errors with them.
type Sentinels struct {
	NotFound error // for ErrCorrupt: a store reports a damaged entry as not found
	Decrypt  error // for ErrDecrypt
	Expired  error // for ErrExpired
}

// Wrap returns err of this package as a store reports it: prefixed once,
// and wrapping the sentinel of package mtls that means the same, whose text
// replaces this package's. An error that already wraps one of them is left
// as it is, prefixed once.
func (s Sentinels) Wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, s.NotFound), errors.Is(err, s.Decrypt), errors.Is(err, s.Expired):
		return Errorf("%w", err)
	case errors.Is(err, ErrCorrupt):
		return Errorf("%w: %w", s.NotFound, err)
	case errors.Is(err, ErrDecrypt):
		return Errorf("%w: %w", s.Decrypt, trimmed{err, ErrDecrypt.Error() + ": "})
	case errors.Is(err, ErrExpired):
		return Errorf("%w: %w", s.Expired, trimmed{err, ErrExpired.Error() + ": "})
	}
	return Errorf("%w", err)
}
