package gateway

import (
	"context"
	"reflect"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/tykconf"
)

// reload re-reads the API definitions and applies them; on error the
// previous ones stay, all of them, and the error is logged.
func (gw *gateway) reload() error {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	err := gw.reloadLocked(context.Background())
	if err != nil {
		gw.log.Printf("reload failed, keeping the previous API definitions: %v", err)
		return err
	}
	gw.log.Printf("reloaded %d API definitions from %s", len(gw.routes.Load().all), gw.appsDir)
	return nil
}

func (gw *gateway) reloadLocked(ctx context.Context) error {
	apis, err := loadAPIs(gw.conf, gw.appsDir)
	if err != nil {
		return err
	}
	sc, err := tykconf.BuildServer(ctx, gw.store, gw.conf, apis)
	if err != nil {
		return err
	}
	return gw.apply(apis, sc)
}

// apply puts apis in place of the APIs served now, all of them or none,
// without dropping a request in flight:
//  1. everything new is built and checked first (prepare): each API's
//     upstream policy by ForAPI, which gives a new API, or one whose policy
//     changed, a selector of its own; an API whose policy did not change
//     keeps its selector (and its connections), checked all the same;
//  2. the server's policy is updated (Server.Update, which checks it too):
//     the one step that switches and can fail, and nothing switched before;
//  3. the new routes replace the old ones: this cannot fail;
//  4. the selectors of the old routes that the new ones do not use are
//     closed once the requests that were using the old routes are done.
//
// On any error every selector built in step 1 is closed, and the previous
// routes, selectors and server policy stay as they were.
func (gw *gateway) apply(apis []*tykconf.API, sc *tykconf.ServerConfig) error {
	old := gw.routes.Load()
	next, built, err := gw.prepare(apis, old)
	if err != nil {
		return err
	}
	if err := gw.srv.Update(sc.Policy); err != nil {
		closeAll(built)
		return sc.Explain(err)
	}
	for _, w := range sc.Warnings {
		gw.log.Printf("warning: %s", w)
	}
	gw.warnAPIs(apis)
	gw.routes.Store(next)
	old.retire(unused(old, next))
	return nil
}

// prepare is step 1 of apply: the routes of apis, compiled, and the
// selectors built for them (the others are old's). Nothing of old changes.
func (gw *gateway) prepare(apis []*tykconf.API, old *table) (next *table, built []*mtls.Selector, err error) {
	oldByID := map[string]*route{}
	for _, r := range old.all {
		oldByID[r.api.APIID] = r
	}
	next = &table{strict: gw.conf.EnableStrictRoutes}
	for _, a := range apis {
		if !a.Served() {
			continue
		}
		sel, p, isNew, err := gw.selectorFor(a, oldByID[a.APIID])
		if err != nil {
			closeAll(built)
			return nil, nil, err
		}
		if isNew {
			built = append(built, sel)
		}
		next.add(gw.newRoute(a, sel, p))
	}
	if err := next.compile(gw.conf); err != nil {
		// Domains were checked when read: this does not happen.
		closeAll(built)
		return nil, nil, err
	}
	return next, built, nil
}

// selectorFor returns the selector for a and its upstream policy: prev's
// selector when prev holds the same policy, else a new one (isNew). Either
// way a's policy is checked now, by ForAPI, as if it were new.
func (gw *gateway) selectorFor(a *tykconf.API, prev *route) (sel *mtls.Selector, p mtls.Policy, isNew bool, err error) {
	if p, err = a.Policy(); err != nil {
		return nil, p, false, err
	}
	if sel, err = a.ForAPI(gw.sel); err != nil {
		return nil, p, false, err
	}
	if prev != nil && samePolicy(prev.policy, p) {
		sel.Close()
		return prev.sel, p, false, nil
	}
	return sel, p, true, nil
}

// samePolicy reports whether a and b are one policy: equal maps and flags,
// and roots that hold the same certificates. Any difference it cannot tell
// (a field added to mtls.Policy that DeepEqual does not compare) counts as
// a change: the API then gets a new selector, never an old policy.
func samePolicy(a, b mtls.Policy) bool {
	ra, rb := a.RootCAs, b.RootCAs
	a.RootCAs, b.RootCAs = nil, nil
	if !reflect.DeepEqual(a, b) || (ra == nil) != (rb == nil) {
		return false
	}
	return ra == nil || ra.Equal(rb)
}

// unused returns the selectors of old's routes that next does not use.
func unused(old, next *table) []*mtls.Selector {
	kept := map[*mtls.Selector]bool{}
	for _, r := range next.all {
		kept[r.sel] = true
	}
	var out []*mtls.Selector
	for _, r := range old.all {
		if !kept[r.sel] {
			out = append(out, r.sel)
		}
	}
	return out
}

func closeAll(sels []*mtls.Selector) {
	for _, s := range sels {
		s.Close()
	}
}

// warnAPIs logs what the API definitions' fields mean here.
func (gw *gateway) warnAPIs(apis []*tykconf.API) {
	for _, a := range apis {
		if !a.Active {
			gw.log.Printf("%s: api %s is not active: not served", a.File, a.APIID)
			continue
		}
		for _, w := range a.Warnings {
			gw.log.Printf("warning: %s", w)
		}
		for _, w := range gw.conf.APIWarnings(a) {
			gw.log.Printf("warning: %s", w)
		}
	}
}
