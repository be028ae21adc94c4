package mtls

import (
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
)

// This file holds the slots of the Map values that policies name (semantics
// §6): a slot caches what a value loads and follows its changes, and a
// read that began before a change notification is never cached after it.
// The slots are shared by the selectors of a gateway, or by the policies of
// a server, so that a store change is seen once: a change notification
// invalidates every slot that names the entry.

// slot caches what one Map value loads, for every selector of a gateway, so
// that a change is seen once. A read that began before an invalidation is
// never cached after it: load compares the slot's generation before and
// after its read.
type slot[T any] struct {
	mu  sync.Mutex // orders a load's store of its result against invalidate
	gen uint64     // bumped by invalidate; under mu
	cur atomic.Pointer[T]
}

// cached returns what the slot last loaded, or nil.
func (s *slot[T]) cached() *T { return s.cur.Load() }

// load calls read and returns its result, which it caches unless the slot
// was invalidated while read ran.
func (s *slot[T]) load(read func() *T) *T {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	v := read()
	s.mu.Lock()
	if s.gen == gen {
		s.cur.Store(v)
	}
	s.mu.Unlock()
	return v
}

// invalidate drops what the slot cached: the next use loads again.
func (s *slot[T]) invalidate() {
	s.mu.Lock()
	s.gen++
	s.cur.Store(nil)
	s.mu.Unlock()
}

// slots are the slots of one gateway's or server's values, by value.
type slots struct {
	store     CertStore
	notifying bool // store is a Notifier: slots of store values are kept until a change

	// mu guards the maps. The owner holds it while it makes the slots of
	// a policy, publishes the state that holds them and forgets those no
	// state holds, so that no slot is forgotten while a state still uses
	// it (a change would then never reach that state).
	mu      sync.Mutex
	certs   map[string]*certSlot
	pins    map[string]*pinSlot
	clients map[string]*clientSlot
}

func newSlots(store CertStore) *slots {
	if v := reflect.ValueOf(store); v.Kind() == reflect.Pointer && v.IsNil() {
		store = nil // a nil *FileStore is no store
	}
	_, notifying := store.(Notifier)
	return &slots{store: store, notifying: notifying, certs: map[string]*certSlot{},
		pins: map[string]*pinSlot{}, clients: map[string]*clientSlot{}}
}

// certSlot returns the slot of src, made on first use. v.mu is held.
func (v *slots) certSlot(src source) *certSlot {
	s := v.certs[src.value]
	if s == nil {
		s = &certSlot{src: src}
		v.certs[src.value] = s
	}
	return s
}

// pinSlot returns the slot of a pin list, made on first use. v.mu is held.
func (v *slots) pinSlot(value string, items []pinItem) *pinSlot {
	s := v.pins[value]
	if s == nil {
		s = &pinSlot{value: value, items: items}
		v.pins[value] = s
	}
	return s
}

// clientSlot returns the slot of an allowed client, made on first use.
// v.mu is held.
func (v *slots) clientSlot(src source) *clientSlot {
	s := v.clients[src.value]
	if s == nil {
		s = &clientSlot{src: src}
		v.clients[src.value] = s
	}
	return s
}

// slotSet is the slots some states hold.
type slotSet struct {
	certs   map[*certSlot]bool
	pins    map[*pinSlot]bool
	clients map[*clientSlot]bool
}

func newSlotSet() slotSet {
	return slotSet{certs: map[*certSlot]bool{}, pins: map[*pinSlot]bool{}, clients: map[*clientSlot]bool{}}
}

// keep forgets the slots that keep does not hold, so that a retired private
// key does not stay in memory. v.mu is held.
func (v *slots) keep(keep slotSet) {
	maps.DeleteFunc(v.certs, func(_ string, s *certSlot) bool { return !keep.certs[s] })
	maps.DeleteFunc(v.pins, func(_ string, s *pinSlot) bool { return !keep.pins[s] })
	maps.DeleteFunc(v.clients, func(_ string, s *clientSlot) bool { return !keep.clients[s] })
}

// invalidate is a store's change of the entry id: the slots that name it
// load again. A store scoped to an organisation may name the entry with its
// organisation prefix: the slots of every value naming the same
// certificate load again.
func (v *slots) invalidate(id string) {
	if plain, ok := storeID(id); ok {
		id = plain
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range v.certs {
		if s.src.kind == fromStore && s.src.id == id {
			s.invalidate()
		}
	}
	for _, s := range v.pins {
		if slices.ContainsFunc(s.items, func(p pinItem) bool { return p.src.kind == fromStore && p.src.id == id }) {
			s.invalidate()
		}
	}
	for _, s := range v.clients {
		if s.src.kind == fromStore && s.src.id == id {
			s.invalidate()
		}
	}
}
