package tykconf

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// resolve makes a relative path relative to dir.
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// isPath reports whether a certificate value (or one item of a pin list) is
// a relative file path to resolve: not inline PEM, not a pin, not something
// that reads as an ID or a fingerprint (which package mtls checks and
// explains), and written with a '.' or a '/' as paths are.
func isPath(v string) bool {
	l := strings.ToLower(v)
	switch {
	case v == "", filepath.IsAbs(v), strings.Contains(v, "-----BEGIN"), strings.HasPrefix(l, "sha256"):
		return false
	case !strings.ContainsAny(v, "./"+string(filepath.Separator)):
		return false
	case len(v) >= 100 && strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == "":
		return false // base64 DER, which package mtls explains
	}
	return true
}

func resolveValue(dir, v string, pins bool) string {
	if !pins {
		if isPath(v) {
			return resolve(dir, v)
		}
		return v
	}
	if !strings.Contains(v, ",") {
		if t := strings.TrimSpace(v); isPath(t) {
			return resolve(dir, t)
		}
		return v
	}
	items := strings.Split(v, ",")
	for i, it := range items {
		if t := strings.TrimSpace(it); isPath(t) {
			items[i] = resolve(dir, t)
		}
	}
	return strings.Join(items, ",")
}

// resolveMap checks the patterns of m and resolves its relative paths; pins
// says that values are comma-separated lists.
func resolveMap(file, field, dir string, m mtls.Map, pins bool) (mtls.Map, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(mtls.Map, len(m))
	for k, v := range m {
		if v == "" {
			return nil, &Error{File: file, Field: field + "[" + strconv.Quote(k) + "]", Err: errors.New("empty value")}
		}
		out[k] = resolveValue(dir, v, pins)
	}
	if _, err := mtls.NewResolver(out, nil); err != nil {
		return nil, &Error{File: file, Field: field, Err: trimmed(err)}
	}
	return out, nil
}

// resolveList resolves the relative paths of a list of certificate values.
func resolveList(file, field, dir string, l []string) ([]string, error) {
	if len(l) == 0 {
		return nil, nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		if strings.TrimSpace(v) == "" {
			return nil, &Error{File: file, Field: field + "[" + strconv.Itoa(i) + "]", Err: errors.New("empty value")}
		}
		out[i] = resolveValue(dir, v, false)
	}
	return out, nil
}

// resolveFiles resolves a list of file paths.
func resolveFiles(file, field, dir string, l []string) ([]string, error) {
	if l == nil {
		return nil, nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		if strings.TrimSpace(v) == "" {
			return nil, &Error{File: file, Field: field + "[" + strconv.Itoa(i) + "]", Err: errors.New("empty path")}
		}
		out[i] = resolve(dir, v)
	}
	return out, nil
}
