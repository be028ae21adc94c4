package redisstore

import "time"

// Option configures a [Store] made by [New].
type Option func(*options)

type options struct {
	prefix  string
	org     string
	onEvent func(Event)
	logLen  int64
}

// DefaultPrefix is the key prefix of a store made without [WithPrefix].
const DefaultPrefix = "mtls:"

// DefaultLogLength is the length the change log is trimmed to, roughly
// (XADD MAXLEN ~), without [WithLogLength]. A node that falls further
// behind than this (a pause, a long partition) resynchronises.
const DefaultLogLength = 10000

// WithPrefix sets the prefix of every Redis key of the store, so that
// several deployments share one Redis: stores with the same prefix and
// organisation share their certificates. It must not contain '{' or '}'
// (the store adds a Redis Cluster hash tag of its own). Default
// [DefaultPrefix], "mtls:".
func WithPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// WithOrg scopes the store to an organisation, as Tyk's dashboard does: the
// store reads, lists and deletes only that organisation's certificates, and
// an entry's ID is org followed by the fingerprint ("acme" +
// "3f1b…"). Get and Delete take either that ID or the bare fingerprint;
// the ID of another organisation is not found, even for the same
// certificate. Add, List, Metadata.ID and notifications give the
// organisation's IDs. org is letters and digits; "" (the default) is no
// organisation.
func WithOrg(org string) Option {
	return func(o *options) { o.org = org }
}

// WithEventHook calls fn on each [Event]: Redis lost, Redis back, cache
// dropped. fn runs on the goroutine that follows the change log, or on
// the goroutine of the call that found Redis unavailable: it must be
// quick, and must not call Close. Default: none.
func WithEventHook(fn func(Event)) Option {
	return func(o *options) { o.onEvent = fn }
}

// WithLogLength sets the length the change log is trimmed to, roughly;
// n < 1 keeps [DefaultLogLength]. Every node of a scope should use the
// same.
func WithLogLength(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.logLen = int64(n)
		}
	}
}

// EventKind says what an [Event] reports.
type EventKind uint8

const (
	// EventOutage: the store lost Redis (Err says how). It serves what it
	// has cached, fails other reads and every write with [ErrUnavailable],
	// and retries in the background.
	EventOutage EventKind = iota + 1
	// EventRecovery: Redis is back and the store follows the change log
	// again; Down is how long it was out. The changes made meanwhile by
	// other nodes are applied (or the store resynchronises first, see
	// EventResync), and the IDs whose reads failed during the outage are
	// notified, so that their users read them again.
	EventRecovery
	// EventResync: the store could not tell what changed while it was not
	// following the change log (its last entry was trimmed away, or Redis
	// lost its data), so it dropped its whole cache and notified every ID
	// it had handed out (IDs of them). Err says why.
	EventResync
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case EventOutage:
		return "outage"
	case EventRecovery:
		return "recovery"
	case EventResync:
		return "resync"
	}
	return "unknown event"
}

// Event reports a change of the store's link with Redis. It never holds
// key material.
type Event struct {
	Kind EventKind
	Err  error         // EventOutage: the error seen; EventResync: why
	Down time.Duration // EventRecovery: how long Redis was unavailable
	IDs  int           // EventResync: how many IDs were notified
}
