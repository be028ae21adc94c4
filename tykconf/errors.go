package tykconf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// Error is a malformed file or a bad value: File is the file as named to
// the parser, Field the JSON path of the value ("" for the file as a whole).
type Error struct {
	File  string
	Field string
	Err   error
}

// Error returns "FILE: FIELD: why", or "FILE: why" without a field.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Err.Error()
	}
	return e.File + ": " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// fieldError returns an *Error of file and field whose cause is
// fmt.Errorf(format, args...).
func fieldError(file, field, format string, args ...any) error {
	return &Error{File: file, Field: field, Err: fmt.Errorf(format, args...)}
}

// trimmed drops the "mtls: " prefix of an error of package mtls, which an
// Error's file and field replace.
func trimmed(err error) error {
	return &prefixless{err}
}

type prefixless struct{ err error }

func (p *prefixless) Error() string { return strings.TrimPrefix(p.err.Error(), "mtls: ") }
func (p *prefixless) Unwrap() error { return p.err }

// pathError names the path of an *os.PathError without its operation
// ("certs/a.pem: no such file or directory").
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// explainPolicy turns a *mtls.PolicyError into one *Error per problem,
// named by where: file and field. Other errors name file.
func explainPolicy(err error, where func(mtls.Problem) (file, field string), file string) error {
	var pe *mtls.PolicyError
	if !errors.As(err, &pe) {
		return &Error{File: file, Err: trimmed(err)}
	}
	errs := make([]error, 0, len(pe.Problems))
	for _, p := range pe.Problems {
		f, field := where(p)
		why := trimmed(p.Err)
		if p.Value != "" {
			why = fmt.Errorf("%s: %w", describeValue(p.Value), why)
		}
		errs = append(errs, &Error{File: f, Field: field, Err: why})
	}
	return errors.Join(errs...)
}

// describeValue names a value in an error: package mtls already gives
// inline PEM by its hash; a long value is cut.
func describeValue(v string) string {
	if len(v) > 120 {
		v = v[:117] + "..."
	}
	return strconv.Quote(v)
}
