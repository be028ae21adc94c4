package mtls

import (
	"cmp"
	"context"
	"crypto/x509"
	"slices"
	"time"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// This file turns a Policy into what a selector installs (semantics §2, §3
// "Fail fast on configuration"): the patterns compiled, every value parsed,
// and the values of the level being set checked now, all problems listed
// in one error.

// plan is the policy of a level merged with the gateway's, compiled and
// parsed: what install turns into a selector's state.
type plan struct {
	certs    *hostmatch.Table
	pins     *hostmatch.Table
	certSrcs []source    // by pattern of certs
	pinItems [][]pinItem // by pattern of pins
	roots    *x509.CertPool
	insecure bool
}

// compile compiles an API and a gateway policy, the first empty at the
// gateway level. A malformed pattern is an error wrapping
// ErrInvalidPattern; a malformed value is a problem, and its source is left
// zero.
func compile(api, gw Policy) (*plan, []Problem, error) {
	certs, err := hostmatch.Compile(api.Certificates, gw.Certificates)
	if err != nil {
		return nil, nil, errorf("Certificates: %w", patternError(err))
	}
	pins, err := hostmatch.Compile(api.PinnedPublicKeys, gw.PinnedPublicKeys)
	if err != nil {
		return nil, nil, errorf("PinnedPublicKeys: %w", patternError(err))
	}
	pl := &plan{certs: certs, pins: pins, roots: api.RootCAs, insecure: api.InsecureSkipVerify || gw.InsecureSkipVerify}
	if pl.roots == nil {
		pl.roots = gw.RootCAs
	}
	var problems []Problem
	for _, p := range certs.Patterns() {
		src, err := parseSource(p.Value)
		if err != nil {
			problems = append(problems, problem(p, "Certificates", err))
		}
		pl.certSrcs = append(pl.certSrcs, src)
	}
	for _, p := range pins.Patterns() {
		items, err := parsePinList(p.Value)
		if err != nil {
			problems = append(problems, problem(p, "PinnedPublicKeys", err))
		}
		pl.pinItems = append(pl.pinItems, items)
	}
	return pl, problems, nil
}

func problem(p hostmatch.Pattern, field string, err error) Problem {
	return Problem{Level: Level(p.Level), Field: field, Pattern: p.Text, Value: name(p.Value), Err: err}
}

// check loads every certificate and resolves every pin of pl's patterns at
// level, now, and returns the problems of those that cannot be used (a
// value that did not parse is not tried). What it loads is not cached: the
// first request loads it again, so that no change made meanwhile is missed.
func (v *slots) check(pl *plan, level Level) []Problem {
	ctx, now := context.Background(), time.Now()
	var problems []Problem
	certErrs := map[string]error{} // by value: each is loaded once
	for i, p := range pl.certs.Patterns() {
		if Level(p.Level) != level || pl.certSrcs[i].kind == 0 {
			continue
		}
		err, seen := certErrs[p.Value]
		if !seen {
			err = readCertificate(ctx, v.store, pl.certSrcs[i]).usable(now)
			certErrs[p.Value] = err
		}
		if err != nil {
			problems = append(problems, problem(p, "Certificates", err))
		}
	}
	for i, p := range pl.pins.Patterns() {
		if Level(p.Level) != level {
			continue
		}
		for _, item := range pl.pinItems[i] {
			if _, _, err := resolvePin(ctx, v.store, item); err != nil {
				problems = append(problems, problem(p, "PinnedPublicKeys", err))
			}
		}
	}
	return problems
}

// policyError returns the error of the problems, or nil: they are listed by
// field, level and pattern, so that the same policy gives the same error.
func policyError(problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Level, b.Level), cmp.Compare(a.Pattern, b.Pattern))
	})
	return &PolicyError{Problems: problems}
}
