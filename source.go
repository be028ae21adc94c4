package mtls

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls/internal/certkit"
)

// This file holds the values of a Map (semantics §1 "Certificate ID"): what
// a value names (a store ID, inline PEM or a file), what it probably meant
// when it is none of these, how it is named in errors, and the version of
// a file.

// sourceKind says what a Map value names.
type sourceKind uint8

const (
	fromStore  sourceKind = iota + 1 // 64 lowercase hex digits, optionally behind an organisation prefix
	fromInline                       // contains "-----BEGIN"
	fromFile                         // anything else that does not look like a mistake
)

// source is a Map value and what it names.
type source struct {
	value string // as written: what a store is asked for, a path, or PEM
	kind  sourceKind
	id    string // fromStore: the ID, the last 64 characters
}

// parseSource classifies a value. A value that looks like an ID or a pin
// written the wrong way is an error wrapping ErrInvalidValue that says
// what was meant, never a file path.
func parseSource(v string) (source, error) {
	switch {
	case v == "":
		return source{}, errorf("%w: empty value", ErrInvalidValue)
	case strings.Contains(v, "-----BEGIN"):
		return source{value: v, kind: fromInline}, nil
	}
	if id, ok := storeID(v); ok {
		return source{value: v, kind: fromStore, id: id}, nil
	}
	if hint := nearMiss(v); hint != "" {
		return source{}, errorf("%w: %s", ErrInvalidValue, hint)
	}
	return source{value: v, kind: fromFile}, nil
}

// storeID reports whether v is a certificate ID: 64 lowercase hex digits,
// optionally behind an organisation prefix of ASCII letters and digits,
// and returns the last 64 characters.
func storeID(v string) (string, bool) {
	if len(v) < 64 || !certkit.IsID(v[len(v)-64:]) || !isAlnum(v[:len(v)-64]) {
		return "", false
	}
	return v[len(v)-64:], true
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// nearMiss says what v, which is not an ID nor PEM, probably meant, or ""
// when it may well be a file path.
func nearMiss(v string) string {
	lower := strings.ToLower(v)
	hexPart, colons := fingerprintHex(v)
	if !colons && isHex(v) {
		hexPart = v
	}
	switch {
	case len(v) >= 64 && isHex(v[len(v)-64:]) && isAlnum(v[:len(v)-64]):
		return "looks like a certificate ID written in upper case: IDs are lowercase hex, as in " + strings.ToLower(v)
	case colons && len(hexPart) == 64:
		return "looks like a SHA-256 fingerprint as openssl prints it: the certificate ID is its hex digits " +
			"without colons, in lower case: " + strings.ToLower(hexPart)
	case len(hexPart) == 40 && (colons || isHex(v)):
		return "looks like a SHA-1 fingerprint: IDs are SHA-256 (openssl x509 -noout -fingerprint -sha256)"
	case isHex(v) && len(v) >= 56 && len(v) <= 72:
		return fmt.Sprintf("looks like a certificate ID with %d hex digits: IDs have 64", len(v))
	case strings.HasPrefix(lower, "sha256/") || strings.HasPrefix(lower, "sha256:") || strings.HasPrefix(lower, "sha-256"):
		return "looks like a public key pin: pins go in PinnedPublicKeys, written sha256//<base64>"
	case looksLikeBase64DER(v):
		return "looks like base64 without its PEM armour: give the PEM text, with its -----BEGIN and -----END lines"
	case strings.Contains(v, "-----") || strings.Contains(v, "PRIVATE KEY"):
		return "looks like PEM without its -----BEGIN line: give the whole PEM text"
	}
	return ""
}

// fingerprintHex returns the hex digits of v written as openssl prints a
// fingerprint ("SHA256 Fingerprint=AB:CD:..."), and whether it had colons.
func fingerprintHex(v string) (string, bool) {
	if _, after, ok := strings.Cut(v, "="); ok && strings.HasSuffix(strings.ToLower(v[:len(v)-len(after)]), "fingerprint=") {
		v = after
	}
	if !strings.Contains(v, ":") {
		return "", false
	}
	for _, pair := range strings.Split(v, ":") {
		if len(pair) != 2 || !isHex(pair) {
			return "", false
		}
	}
	return strings.ReplaceAll(v, ":", ""), true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// looksLikeBase64DER reports the base64 of DER (a certificate or a key
// pasted without its PEM lines), which starts "MI", "MH" or "MC".
func looksLikeBase64DER(v string) bool {
	v = strings.TrimRight(v, "=")
	if len(v) < 40 || v[0] != 'M' || !strings.ContainsAny(v[1:2], "IHC") {
		return false
	}
	_, err := base64.RawStdEncoding.DecodeString(v)
	return err == nil
}

// describe names a value in an error message: name(v), quoted when it is
// the value as written.
func describe(v string) string {
	if n := name(v); n != v {
		return n
	}
	return strconv.Quote(v)
}

// name returns a value as errors and events name it: as written, except
// inline PEM, and anything long or over several lines, named by its
// SHA-256, never by its text: it may hold a private key.
func name(v string) string {
	switch {
	case strings.Contains(v, "-----BEGIN"):
		return "inline PEM sha256:" + Fingerprint([]byte(v))
	case len(v) > 256 || strings.ContainsAny(v, "\r\n") || strings.Contains(v, "-----") || looksLikeBase64DER(v):
		return fmt.Sprintf("value of %d bytes sha256:%s", len(v), Fingerprint([]byte(v)))
	}
	return v
}

// fileVersion identifies a version of a file: a file whose size,
// modification time or identity (device and inode, where the system has
// them) differ has changed. Writers that rename a new file into place
// change its identity even within one clock tick.
type fileVersion struct {
	size  int64
	mtime int64
	dev   uint64
	ino   uint64
}

func versionOf(fi os.FileInfo) fileVersion {
	dev, ino := fileID(fi)
	return fileVersion{size: fi.Size(), mtime: fi.ModTime().UnixNano(), dev: dev, ino: ino}
}
