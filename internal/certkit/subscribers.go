package certkit

import (
	"maps"
	"slices"
	"sync"
)

// Subscribers is the set of a store's Notify functions (mtls.Notifier).
type Subscribers struct {
	Mu   sync.Mutex // guards next and fns, and is held while OnCount runs
	next uint64
	fns  map[uint64]func(string)
	// OnCount, if set, is called under Mu with the number of subscribers
	// after each change of it.
	OnCount func(n int)
}

// Add registers fn and returns its stop function.
func (n *Subscribers) Add(fn func(string)) (stop func()) {
	n.Mu.Lock()
	defer n.Mu.Unlock()
	if n.fns == nil {
		n.fns = make(map[uint64]func(string))
	}
	key := n.next
	n.next++
	n.fns[key] = fn
	n.counted()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.Mu.Lock()
			defer n.Mu.Unlock()
			if _, ok := n.fns[key]; ok {
				delete(n.fns, key)
				n.counted()
			}
		})
	}
}

func (n *Subscribers) counted() {
	if n.OnCount != nil {
		n.OnCount(len(n.fns))
	}
}

// Notify calls every subscriber with each id, in the order they
// subscribed. The caller must hold no lock of the store.
func (n *Subscribers) Notify(ids ...string) {
	n.Mu.Lock()
	keys := slices.Sorted(maps.Keys(n.fns))
	fns := make([]func(string), len(keys))
	for i, k := range keys {
		fns[i] = n.fns[k]
	}
	n.Mu.Unlock()
	for _, id := range ids {
		for _, fn := range fns {
			fn(id)
		}
	}
}

// Clear removes every subscriber.
func (n *Subscribers) Clear() {
	n.Mu.Lock()
	defer n.Mu.Unlock()
	n.fns = nil
	n.counted()
}
