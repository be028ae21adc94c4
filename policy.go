package mtls

import (
	"context"
	"crypto/x509"
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
// ErrInvalidPattern; a malformed value a problem of a *PolicyError.
func compile(api, gw Policy, level Level) (*plan, error) {
	certs, err := hostmatch.Compile(api.Certificates, gw.Certificates)
	if err != nil {
		return nil, errorf("Certificates: %w", patternError(err))
	}
	pins, err := hostmatch.Compile(api.PinnedPublicKeys, gw.PinnedPublicKeys)
	if err != nil {
		return nil, errorf("PinnedPublicKeys: %w", patternError(err))
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
	if len(problems) > 0 {
		return nil, &PolicyError{Problems: problems}
	}
	return pl, nil
}

func problem(p hostmatch.Pattern, field string, err error) Problem {
	return Problem{Level: Level(p.Level), Field: field, Pattern: p.Text, Value: describe(p.Value), Err: err}
}

// check loads every certificate and resolves every pin of pl's patterns at
// level, now, and returns a *PolicyError listing those that cannot be
// used, in the order of the patterns. What it loads is not cached: the first request loads it again, so
// that no change made meanwhile is missed.
func (c *core) check(pl *plan, level Level) error {
	ctx, now := context.Background(), time.Now()
	var problems []Problem
	certErrs := map[string]error{} // by value: each is loaded once
	for i, p := range pl.certs.Patterns() {
		if Level(p.Level) != level {
			continue
		}
		err, seen := certErrs[p.Value]
		if !seen {
			err = readCertificate(ctx, c.store, pl.certSrcs[i]).usable(now)
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
			if _, _, err := resolvePin(ctx, c.store, item); err != nil {
				problems = append(problems, problem(p, "PinnedPublicKeys", err))
			}
		}
	}
	if len(problems) > 0 {
		return &PolicyError{Problems: problems}
	}
	return nil
}
