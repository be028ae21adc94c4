package mtls

import (
	"context"
	"sync"
	"time"
)

// This file holds expiry warnings (semantics §8 "Expiry monitoring of every
// mapped certificate"): an event when a certificate a policy names comes
// within the warning horizon, and when it expires, once per certificate,
// checked when a policy is set and on a timer, never on a request.

// DefaultExpiryWarning is the default horizon of expiry warnings.
const DefaultExpiryWarning = 30 * 24 * time.Hour

// expiryCheckEvery is how often a watch checks between policy changes.
var expiryCheckEvery = time.Hour

// WithExpiryWarning sets the horizon of the [CertificateExpiring] event:
// a certificate that the policy names (client, server, pinned, allowed)
// and that expires within d is reported once; d < 0 turns the expiry
// events off. They need an event hook ([WithEventHook]): without one,
// nothing is watched. Default [DefaultExpiryWarning].
func WithExpiryWarning(d time.Duration) Option {
	return func(o *options) { o.expiryWarning = d }
}

// expiryWatch reports the certificates of an inventory that come within
// the horizon or expire.
type expiryWatch struct {
	horizon   time.Duration
	inventory func(context.Context) []CertificateUse
	report    func(Event)
	stop      chan struct{}
	done      chan struct{}

	mu       sync.Mutex       // guards reported; serialises checks
	reported map[string]uint8 // by certificate ID: the last kind reported
}

// newExpiryWatch starts a watch, or returns nil when there is nothing to
// report to or the warnings are off.
func newExpiryWatch(o options, inventory func(context.Context) []CertificateUse) *expiryWatch {
	if o.onEvent == nil || o.expiryWarning < 0 {
		return nil
	}
	w := &expiryWatch{horizon: o.expiryWarning, inventory: inventory, report: o.onEvent,
		stop: make(chan struct{}), done: make(chan struct{}), reported: map[string]uint8{}}
	go w.run()
	return w
}

func (w *expiryWatch) run() {
	defer close(w.done)
	t := time.NewTicker(expiryCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.check()
		}
	}
}

// check reports what the inventory holds that comes within the horizon or
// has expired, once per certificate and kind.
func (w *expiryWatch) check() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for _, u := range w.inventory(context.Background()) {
		if u.Err != nil || u.NotAfter.IsZero() {
			continue
		}
		kind := EventKind(0)
		switch {
		case !now.Before(u.NotAfter):
			kind = CertificateExpired
		case u.NotAfter.Sub(now) <= w.horizon:
			kind = CertificateExpiring
		default:
			continue
		}
		if w.reported[u.ID] >= uint8(kind) {
			continue
		}
		w.reported[u.ID] = uint8(kind)
		w.report(Event{Kind: kind, CertificateID: u.ID, NotAfter: u.NotAfter, Field: u.Field,
			Level: u.Level, Pattern: u.Pattern, Value: u.Value})
	}
}

// close stops the watch and waits for it.
func (w *expiryWatch) close() {
	if w != nil {
		close(w.stop)
		<-w.done
	}
}
