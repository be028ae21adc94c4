package redisstore

import (
	"maps"
	"slices"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/internal/certkit"
)

// The IDs a store takes and gives. Redis knows an entry by its
// fingerprint (64 lowercase hex digits); the store's callers know it by
// its ID, the fingerprint behind the store's organisation, if any.

// display returns the ID of the entry with fingerprint fp as the store
// gives it: behind the store's organisation, if any.
func (s *Store) display(fp string) string { return s.org + fp }

// displayAll returns the IDs of the fingerprints of set, sorted.
func (s *Store) displayAll(set map[string]struct{}) []string {
	ids := slices.Sorted(maps.Keys(set))
	for i, fp := range ids {
		ids[i] = s.display(fp)
	}
	return ids
}

// plainID returns the fingerprint that id names in this store: id itself,
// or the fingerprint behind an organisation prefix (the store's own, when
// it has one; any, when it has none). Anything else is an error wrapping
// mtls.ErrNotFound, and never reaches Redis.
func (s *Store) plainID(id string) (string, error) {
	if certkit.IsID(id) {
		return id, nil
	}
	if n := len(id); n > 64 && certkit.IsID(id[n-64:]) && isAlnum(id[:n-64]) {
		org := id[:n-64]
		if s.org == "" || org == s.org {
			return id[n-64:], nil
		}
		return "", errorf("%w: no certificate or key with ID %s in organisation %s (the ID is of organisation %s)",
			mtls.ErrNotFound, id, s.org, org)
	}
	return "", errorf("%w: %s is not a certificate ID (64 lowercase hex digits, optionally behind an organisation)",
		mtls.ErrNotFound, describe(id))
}

// isAlnum reports whether s is ASCII letters and digits only, as an
// organisation name is.
func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
