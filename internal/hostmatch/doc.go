// Package hostmatch compiles the host patterns of an API-level and a
// gateway-level map into a table, and finds the pattern that applies to a
// host (contract section 2, "Resolving a host"). Package mtls wraps it as
// mtls.Resolver and uses it on every request.
//
// Where each rule of the contract lives:
//
//   - Normalisation of patterns and hosts (lowercase, one trailing dot
//     removed, IPv6 canonical with or without brackets) and the rejected
//     patterns: parse.go. "No port is port 443" is applied by Find, because a
//     pattern without a port means any port.
//   - Two patterns of one map that normalise alike: Compile (compile.go);
//     with the same value they are kept once, as the one that sorts first.
//   - '*' alone is its map's default (Table.defaults); '*' as a label matches
//     one label, never an IP address (mask.go); a pattern without a port
//     matches any port, one with a port only that port (entryFor, find.go).
//   - Precedence (API specific, API '*', gateway specific, gateway '*'; exact
//     before wildcards) and the tie-breaks between wildcards: Find and
//     searchWild (find.go), with ranks computed by rankWildcards
//     (compile.go). Patterns are processed in sorted order: nothing depends
//     on map order.
//
// # Design
//
// Compile puts both maps into one open-addressing hash table with a record
// per exact name and per wildcard pattern, keyed by the name in normal form
// (table.go). Each record holds the entries of both levels, by port. A
// lookup parses and hashes the host in one pass over its bytes (parse.go,
// hash.go), then probes its exact name and, once per mask of the host's
// label count (the shape of a wildcard pattern's '*' labels), the pattern of
// that mask the host would match, whose hash is the host's with a term
// changed per '*' label. It builds no string and does not allocate for a
// host in normal form, and its cost depends on the variety of masks, not on
// the number of patterns.
//
// Memory: a probe that misses reads a byte of tag per slot; one that hits
// reads its record (40 bytes, holding the entry of a name that has one) and
// the name's bytes. Pattern texts and values are out of line, read only for
// the winner.
package hostmatch
