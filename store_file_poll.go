package mtls

import (
	"os"
	"slices"
	"time"
)

// The FileStore's poller (semantics §6: changes by another process are seen
// within a documented bound). While the store has a subscriber, a
// goroutine stats the directory every half FileStorePollInterval, lists it
// when it changed (and at least every fullScanEvery), drops the cached
// entries whose file changed, and reports their IDs. Without a
// subscriber, Get, Metadata and List check an entry against its file when
// they last did so longer than FileStorePollInterval ago (FileStore.fresh).

const (
	fullScanEvery = 10 * time.Second // a poller rescans all files at least this often
	dirMtimeSlack = 2 * time.Second  // directory mtimes this recent may hide a change
)

// Notify implements [Notifier]. Changes made through this FileStore are
// reported before Add or Delete returns. While at least one subscriber
// exists, a goroutine polls the directory (a stat of the directory every
// half [FileStorePollInterval]; a listing when it changed) and reports
// changes made by other processes within FileStorePollInterval, after
// dropping their cached entries. After Close, fn is never called.
func (s *FileStore) Notify(fn func(id string)) (stop func()) {
	if s == nil || s.closed.Load() || s.entries == nil {
		return func() {}
	}
	return s.subs.Add(fn)
}

// Close stops the poller, if any, and waits for it to finish; subscribers
// are dropped, and later calls of the store's methods fail with an error
// wrapping [fs.ErrClosed]. Close must not be called from a subscriber.
// Closing twice is harmless.
func (s *FileStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.subs.Clear()
	s.wg.Wait()
	return nil
}

// storePoller is the state of one polling goroutine.
type storePoller struct {
	stop     chan struct{}
	seen     map[string]fileVersion // guarded by FileStore.wmu; what was last reported
	dirSig   fileVersion
	dirSafe  bool // dirSig's mtime was old enough to trust when taken
	lastFull time.Time
}

// subscribers starts and stops the poller; called under subs.Mu.
func (s *FileStore) subscribers(n int) {
	cur := s.poller.Load()
	switch {
	case n > 0 && cur == nil && !s.closed.Load():
		p := &storePoller{stop: make(chan struct{})}
		s.poller.Store(p)
		s.wg.Add(1)
		go s.poll(p)
	case n == 0 && cur != nil:
		s.poller.Store(nil)
		s.polling.Store(false)
		close(cur.stop)
	}
}

func (s *FileStore) poll(p *storePoller) {
	defer s.wg.Done()
	s.scan(p, true)
	s.subs.Mu.Lock()
	if s.poller.Load() == p {
		s.polling.Store(true)
	}
	s.subs.Mu.Unlock()
	t := time.NewTicker(FileStorePollInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if changed := s.scan(p, false); len(changed) > 0 {
			select {
			case <-p.stop:
				return
			default:
			}
			s.subs.Notify(changed...)
		}
	}
}

// scan compares the directory with what p last saw, drops cached entries
// whose file changed, and returns the IDs that changed (none on the
// baseline scan).
func (s *FileStore) scan(p *storePoller, baseline bool) []string {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	dfi, err := os.Stat(s.dir)
	if err != nil {
		return nil
	}
	now := time.Now()
	ds := versionOf(dfi)
	if !baseline && p.dirSafe && ds == p.dirSig && now.Sub(p.lastFull) < fullScanEvery {
		return nil // no file was created, renamed or removed
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	disk := make(map[string]fileVersion, len(des))
	for _, de := range des {
		id, ok := entryID(de.Name())
		if !ok {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		disk[id] = versionOf(fi)
	}
	p.dirSig, p.dirSafe, p.lastFull = ds, now.Sub(dfi.ModTime()) > dirMtimeSlack, now

	var changed []string
	if !baseline {
		for id, sg := range disk {
			if old, ok := p.seen[id]; !ok || old != sg {
				changed = append(changed, id)
			}
		}
		for id := range p.seen {
			if _, ok := disk[id]; !ok {
				changed = append(changed, id)
			}
		}
	}
	p.seen = disk

	s.mu.Lock()
	dropped := false
	for id, e := range s.entries {
		if sg, ok := disk[id]; !ok || sg != e.version {
			delete(s.entries, id)
			dropped = true
		}
	}
	if dropped {
		s.gen++
	}
	s.mu.Unlock()
	slices.Sort(changed)
	return changed
}
