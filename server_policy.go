package mtls

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// This file turns a ServerPolicy into what a Server installs (semantics §3
// "Fail fast on configuration", §7): SNI patterns and API domains compiled,
// every value parsed, every value checked now, all problems listed in one
// error.

// serverPlan is a ServerPolicy compiled and parsed.
type serverPlan struct {
	certs      *hostmatch.Table
	certSrcs   []source // by pattern of certs
	global     rulesPlan
	apis       []apiPlan
	domains    *hostmatch.Table
	groups     [][]int // APIs by pattern of domains
	anyDomain  []int   // APIs on every domain
	apiClients []source
	problems   []Problem
	policy     ServerPolicy // as given
}

// rulesPlan is a clientRules before its allowlist has slots.
type rulesPlan struct {
	cas       *x509.CertPool
	depth     int
	allowed   []source
	authorize Authorizer
}

type apiPlan struct {
	name  string
	mtls  bool
	rules rulesPlan
}

// compileServer compiles p. A malformed SNI pattern or API domain is an
// error wrapping ErrInvalidPattern; other problems are listed in the plan.
func compileServer(p ServerPolicy) (*serverPlan, error) {
	certs, err := hostmatch.Compile(nil, p.Certificates)
	if err != nil {
		return nil, errorf("Certificates: %w", patternError(err))
	}
	pl := &serverPlan{certs: certs}
	for _, pat := range certs.Patterns() {
		src, err := parseSource(pat.Value)
		if err != nil {
			pl.problems = append(pl.problems, problem(pat, "Certificates", err))
		}
		pl.certSrcs = append(pl.certSrcs, src)
	}
	pl.global = pl.rules("", p.ClientCAs, p.VerifyDepth, p.AllowedClients, p.Authorize)
	pl.apiClients = pl.sources("APIClients", p.APIClients)
	if err := pl.compileAPIs(p); err != nil {
		return nil, err
	}
	return pl, nil
}

// rules parses the client rules of the policy or of API api.
func (pl *serverPlan) rules(api string, cas *x509.CertPool, depth int, allowed []string, authorize Authorizer) rulesPlan {
	field := "AllowedClients"
	if api != "" {
		field = "APIs[" + strconv.Quote(api) + "].AllowedClients"
	}
	if authorize != nil && cas == nil {
		pl.problems = append(pl.problems, Problem{Field: field, Err: errorf("%w: Authorize allows clients by name, which anyone can put in a certificate of their own: set ClientCAs too", ErrInvalidValue)})
	}
	if depth < 0 {
		pl.problems = append(pl.problems, Problem{Field: field, Err: errorf("%w: VerifyDepth %d is negative", ErrInvalidValue, depth)})
	}
	return rulesPlan{cas: cas, depth: depth, allowed: pl.sources(field, allowed), authorize: authorize}
}

// sources parses the values of a list, by index: a value that does not
// parse is a problem, and its source is left zero.
func (pl *serverPlan) sources(field string, values []string) []source {
	srcs := make([]source, len(values))
	for i, v := range values {
		src, err := parseSource(v)
		if err != nil {
			pl.problems = append(pl.problems, Problem{Field: field + "[" + strconv.Itoa(i) + "]", Value: name(v), Err: err})
			continue
		}
		srcs[i] = src
	}
	return srcs
}

// compileAPIs compiles the APIs and their domains.
func (pl *serverPlan) compileAPIs(p ServerPolicy) error {
	seen := map[string]bool{}
	domains := map[string]string{} // normal form -> itself
	var order []string             // the normal form of each API's domain, "" for every domain
	for _, a := range p.APIs {
		field := "APIs[" + strconv.Quote(a.Name) + "]"
		switch {
		case a.Name == "":
			pl.problems = append(pl.problems, Problem{Field: "APIs", Err: errorf("%w: an API without a Name", ErrInvalidValue)})
		case seen[a.Name]:
			pl.problems = append(pl.problems, Problem{Field: field, Err: errorf("%w: two APIs named %q", ErrInvalidValue, a.Name)})
		}
		seen[a.Name] = true
		rules := pl.rules(a.Name, a.ClientCAs, a.VerifyDepth, a.AllowedClients, a.Authorize)
		if a.MutualTLS && a.ClientCAs == nil && len(a.AllowedClients) == 0 && a.Authorize == nil && len(p.APIClients) == 0 {
			pl.problems = append(pl.problems, Problem{Field: field, Err: errorf("%w: the API requires mutual TLS but accepts no client: set AllowedClients, ClientCAs, Authorize or the policy's APIClients", ErrInvalidValue)})
		}
		pl.apis = append(pl.apis, apiPlan{name: a.Name, mtls: a.MutualTLS, rules: rules})
		norm := ""
		if a.Domain != "" && a.Domain != "*" {
			var h hostmatch.Host
			if reason := h.ParsePattern(a.Domain); reason != "" || h.Port() != 0 {
				if reason == "" {
					reason = "API domains are hosts, without a port"
				}
				return errorf("%s.Domain: %w %s: %s", field, ErrInvalidPattern, quotePattern(a.Domain), reason)
			}
			norm = h.String()
			domains[norm] = norm
		}
		order = append(order, norm)
	}
	var err error
	if pl.domains, err = hostmatch.Compile(nil, domains); err != nil {
		return errorf("APIs: %w", patternError(err))
	}
	index := map[string]int{}
	for i, pat := range pl.domains.Patterns() {
		index[pat.Value] = i
	}
	pl.groups = make([][]int, len(pl.domains.Patterns()))
	for i, norm := range order {
		if norm == "" {
			pl.anyDomain = append(pl.anyDomain, i)
		} else {
			pl.groups[index[norm]] = append(pl.groups[index[norm]], i)
		}
	}
	return nil
}

// checkServer loads every server certificate and allowed client of pl now
// and returns the problems of those that cannot be used.
func (v *slots) checkServer(pl *serverPlan, now time.Time) []Problem {
	ctx := context.Background()
	var problems []Problem
	for i, p := range pl.certs.Patterns() {
		if pl.certSrcs[i].kind == 0 {
			continue
		}
		if err := readCertificate(ctx, v.store, pl.certSrcs[i]).usable(now); err != nil {
			problems = append(problems, Problem{Field: "Certificates", Pattern: p.Text, Value: name(p.Value), Err: err})
		}
	}
	check := func(field string, srcs []source) {
		for i, src := range srcs {
			if src.kind == 0 {
				continue // did not parse: a problem already
			}
			if err := readClient(ctx, v.store, src).err; err != nil {
				problems = append(problems, Problem{Field: field + "[" + strconv.Itoa(i) + "]", Value: name(src.value), Err: err})
			}
		}
	}
	check("AllowedClients", pl.global.allowed)
	check("APIClients", pl.apiClients)
	for _, a := range pl.apis {
		check("APIs["+strconv.Quote(a.name)+"].AllowedClients", a.rules.allowed)
	}
	return problems
}

// install makes pl the server's state, with the slot of each value.
func (s *Server) install(pl *serverPlan) {
	v := s.slots
	v.mu.Lock()
	defer v.mu.Unlock()
	held := newSlotSet()
	st := &serverState{certs: pl.certs, domains: pl.domains, apis: map[string]*apiState{}, held: held, policy: pl.policy}
	for _, src := range pl.certSrcs {
		slot := v.certSlot(src)
		held.certs[slot] = true
		st.certSlots = append(st.certSlots, slot)
	}
	st.global = v.clientRules(pl.global, nil, false, held)
	apis := make([]*apiState, len(pl.apis))
	for i, a := range pl.apis {
		apis[i] = &apiState{name: a.name, mtls: a.mtls, rules: v.clientRules(a.rules, pl.apiClients, true, held)}
		st.apis[a.name] = apis[i]
	}
	for _, g := range pl.groups {
		var group []*apiState
		for _, i := range g {
			group = append(group, apis[i])
		}
		st.groups = append(st.groups, group)
	}
	for _, i := range pl.anyDomain {
		st.anyDomain = append(st.anyDomain, apis[i])
	}
	s.state.Store(st)
	v.keep(held)
}

// clientRules makes the rules of rp, whose allowlist also holds extra,
// with the slot of each value, which it adds to held. The client must be
// listed when rp has an allowlist or an Authorizer, or, for an API
// (api), no CAs: extra (the policy's APIClients) widens an API's
// allowlist, and never narrows an API that accepts its CAs' clients. v.mu
// is held.
func (v *slots) clientRules(rp rulesPlan, extra []source, api bool, held slotSet) clientRules {
	r := clientRules{cas: rp.cas, depth: rp.depth, authorize: rp.authorize,
		listed: len(rp.allowed) > 0 || rp.authorize != nil || api && rp.cas == nil}
	if len(rp.allowed)+len(extra) == 0 {
		return r
	}
	r.allowed = &allowList{byID: map[[32]byte]*clientSlot{}}
	for _, src := range append(append([]source(nil), rp.allowed...), extra...) {
		if src.kind == 0 {
			continue
		}
		slot := v.clientSlot(src)
		held.clients[slot] = true
		if src.kind == fromStore {
			id, _ := hex.DecodeString(src.id)
			r.allowed.byID[[32]byte(id)] = slot
		} else {
			r.allowed.others = append(r.allowed.others, slot)
		}
	}
	return r
}
