package mtls

import (
	"context"
	"time"
)

// This file holds what tools ask a Selector (semantics §2 "The resolver can
// also say which pattern and which level matched, for tools and logs"):
// which certificate and pins a host gets, and why.

// Resolution says what a host gets from a [Selector], and why.
type Resolution struct {
	Host        string // the host, normalised as host:port
	Certificate Choice // Policy.Certificates
	Pins        Choice // Policy.PinnedPublicKeys
}

// Choice is what one map of a policy gives a host.
type Choice struct {
	// Match is the pattern that applies; the zero Match when none does.
	Match
	// Steps are what each step of the precedence would give the host, in
	// order: API level specific, API level '*', gateway level specific,
	// gateway level '*'. The first non-zero step is Match.
	Steps [4]Match
	// ID is the ID of the client certificate presented (Certificates).
	ID string
	// Pins are the pins in force, as sha256//<base64> (PinnedPublicKeys).
	Pins []string
	// Err is why the choice cannot be used now: the request fails closed.
	Err error
}

// Explain returns what host, as a request's URL.Host, gets from the
// selector now, and why: the pattern and level that chose its certificate
// and its pins, and what each step of the precedence offered. It reads
// what it needs as a request would, and reports no event.
func (s *Selector) Explain(host string) (Resolution, error) {
	if !s.usable() {
		return Resolution{}, ErrClosed
	}
	var h requestHost
	if err := parseRequestHost(host, &h); err != nil {
		return Resolution{}, err
	}
	st := s.state.Load()
	res := Resolution{Host: h.key.String()}
	certs, pins := &Resolver{t: st.certs}, &Resolver{t: st.pins}
	for i, p := range st.certs.Tiers(&h.parsed, h.key.port) {
		res.Certificate.Steps[i], _ = certs.match(p)
	}
	for i, p := range st.pins.Tiers(&h.parsed, h.key.port) {
		res.Pins.Steps[i], _ = pins.match(p)
	}
	if i := st.certs.Find(&h.parsed, h.key.port); i >= 0 {
		res.Certificate.Match, _ = certs.match(i)
		cs, err := s.c.certificate(context.Background(), st.certSlots[i], time.Now())
		if err != nil {
			res.Certificate.Err = s.refuse(st.certs.Patterns()[i], h.key, err, false)
		} else {
			res.Certificate.ID = cs.id
		}
	}
	if i := st.pins.Find(&h.parsed, h.key.port); i >= 0 {
		res.Pins.Match, _ = pins.match(i)
		ps := s.c.pinSet(context.Background(), st.pinSlots[i])
		for _, sum := range ps.hashes {
			res.Pins.Pins = append(res.Pins.Pins, hashPin(sum))
		}
		if len(ps.hashes) == 0 {
			res.Pins.Err = errorf("%w: host %s: no pin of %s can be resolved any more", ErrPinMismatch, h.key, describe(res.Pins.Value))
		}
	}
	return res, nil
}
