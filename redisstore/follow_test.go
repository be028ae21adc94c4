package redisstore

// The change log follower: notification across nodes, and
// resynchronisation when the log no longer continues from where a node
// stopped (trimmed, deleted, Redis flushed, idle or connected).

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNotifyIsForEveryNode: a subscriber of one node hears of the changes
// of the others, with the ID; its own changes before Add returns.
func TestNotifyAcrossNodes(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, srv.Addr(), "b")
	ca := mtlstest.MustCA(t, "notify CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "n"})
	got := make(chan string, 16)
	b.store.Notify(func(id string) { got <- id })
	mine := make(chan string, 16)
	a.store.Notify(func(id string) { mine <- id })
	for _, step := range []func() error{
		func() error { _, err := a.store.Add(ctx, leaf.CertPEM); return err },
		func() error { _, err := a.store.Add(ctx, leaf.PEM()); return err },
		func() error { return a.store.Delete(ctx, leaf.ID()) },
	} {
		require.NoError(t, step())
		select {
		case id := <-mine:
			assert.Equal(t, leaf.ID(), id)
		default:
			t.Fatal("a's subscriber was not called before the change returned")
		}
		select {
		case id := <-got:
			assert.Equal(t, leaf.ID(), id)
		case <-time.After(waitFor):
			t.Fatal("b's subscriber was not called")
		}
	}
	// a's own changes come back through the log without a second call.
	seq, err := srv.admin(t).HGet(ctx, "mtls:{_}:certs", "seq").Uint64()
	require.NoError(t, err)
	eventually(t, "a reads its own changes back", func() bool { return a.store.appliedSeq() >= seq })
	assert.Empty(t, mine)
}

// TestResyncAfterTrim: a node cut off while the change log it had not read
// is trimmed away resynchronises when it is back: it drops its cache,
// notifies every ID it handed out, and serves what Redis holds.
func TestResyncAfterTrim(t *testing.T) {
	for _, how := range []string{"XTRIM", "DEL", "FLUSHALL"} {
		t.Run(how, func(t *testing.T) {
			srv := startRedis(t)
			ctx := context.Background()
			proxy := newProxy(t, srv.Addr())
			a := newNode(t, srv.Addr(), "a")
			b := newNode(t, proxy.Addr(), "b")
			ca := mtlstest.MustCA(t, "trim CA")
			kept := ca.MustIssue(t, mtlstest.Options{CommonName: "kept"})
			gone := ca.MustIssue(t, mtlstest.Options{CommonName: "gone"})
			late := ca.MustIssue(t, mtlstest.Options{CommonName: "late"})
			for _, l := range []*mtlstest.Leaf{kept, gone} {
				_, err := a.store.Add(ctx, l.PEM())
				require.NoError(t, err)
				_, err = b.store.Get(ctx, l.ID())
				require.NoError(t, err)
			}
			_, err := b.store.Get(ctx, late.ID())
			require.ErrorIs(t, err, mtls.ErrNotFound) // cached as absent
			var mu sync.Mutex
			seen := map[string]int{}
			b.store.Notify(func(id string) { mu.Lock(); seen[id]++; mu.Unlock() })

			proxy.cut()
			eventually(t, "b reports the outage", func() bool { return b.events.count(EventOutage) > 0 })
			c, err := b.store.Get(ctx, gone.ID())
			require.NoError(t, err, "a cut-off node serves its cache")
			require.NotNil(t, c.TLS)
			admin := srv.admin(t)
			switch how {
			case "FLUSHALL": // Redis lost its data, then took writes again
				require.NoError(t, admin.FlushAll(ctx).Err())
				_, err = a.store.Add(ctx, kept.PEM())
				require.NoError(t, err)
			default:
				require.NoError(t, a.store.Delete(ctx, gone.ID()))
				if how == "DEL" {
					require.NoError(t, admin.Del(ctx, "mtls:{_}:log").Err())
				} else {
					require.NoError(t, admin.XTrimMaxLen(ctx, "mtls:{_}:log", 0).Err())
				}
			}
			_, err = a.store.Add(ctx, late.PEM())
			require.NoError(t, err)
			proxy.restore()
			eventually(t, "b resynchronises", func() bool { return b.events.count(EventResync) > 0 })
			eventually(t, "b recovers", func() bool { return b.events.count(EventRecovery) > 0 })
			_, err = b.store.Get(ctx, gone.ID())
			assert.ErrorIs(t, err, mtls.ErrNotFound, "a deletion made while b was cut off is undone")
			c, err = b.store.Get(ctx, late.ID())
			require.NoError(t, err, "an addition made while b was cut off is missed")
			assert.NotNil(t, c.TLS)
			_, err = b.store.Get(ctx, kept.ID())
			require.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			for _, l := range []*mtlstest.Leaf{kept, gone, late} {
				assert.Positive(t, seen[l.ID()], "%s not notified; events %v", l.Cert.Subject.CommonName, b.events)
			}
		})
	}
}

// TestDataLossWhileIdle: Redis loses its data and takes no write after:
// the idle check of the follower notices, and the node resynchronises.
func TestDataLossWhileIdle(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, srv.Addr(), "b")
	ca := mtlstest.MustCA(t, "loss CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "lost"})
	_, err := a.store.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	_, err = b.store.Get(ctx, leaf.ID())
	require.NoError(t, err)
	require.NoError(t, srv.admin(t).FlushAll(ctx).Err())
	d := eventually(t, "b notices the loss", func() bool {
		_, err := b.store.Get(ctx, leaf.ID())
		return isErr(err, mtls.ErrNotFound)
	})
	t.Logf("lost data noticed after %v (events %v)", d, b.events)
	assert.Positive(t, b.events.count(EventResync))
}

// TestGapWhileConnected: Redis loses its data while a node follows the
// log, and takes writes right after, so that the node is never idle: the
// numbers of the changes it reads start again, which tells it to
// resynchronise. The writer, whose key derivation record went with the
// data, puts it back.
func TestGapWhileConnected(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, srv.Addr(), "b")
	ca := mtlstest.MustCA(t, "gap CA")
	lost := ca.MustIssue(t, mtlstest.Options{CommonName: "lost"})
	filler := ca.MustIssue(t, mtlstest.Options{CommonName: "filler"})
	_, err := a.store.Add(ctx, lost.PEM())
	require.NoError(t, err)
	_, err = b.store.Get(ctx, lost.ID())
	require.NoError(t, err)
	admin := srv.admin(t)
	rec, err := admin.Get(ctx, "mtls:{_}:kdf").Result()
	require.NoError(t, err)

	require.NoError(t, admin.FlushAll(ctx).Err())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // a change every 20 ms: b's blocking read never times out
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var err error
			if i%2 == 0 {
				_, err = a.store.Add(ctx, filler.PEM())
			} else {
				err = a.store.Delete(ctx, filler.ID())
			}
			assert.NoError(t, err)
		}
	})
	eventually(t, "b drops what Redis lost", func() bool {
		_, err := b.store.Get(ctx, lost.ID())
		return errors.Is(err, mtls.ErrNotFound)
	})
	close(stop)
	wg.Wait()
	assert.Positive(t, b.events.count(EventResync), "events %v", b.events)
	rec2, err := admin.Get(ctx, "mtls:{_}:kdf").Result()
	require.NoError(t, err)
	assert.Equal(t, rec, rec2, "the writer put back the record its key was derived from")
	_, err = a.store.Add(ctx, filler.PEM())
	require.NoError(t, err)
	eventually(t, "b opens a key sealed after the loss", func() bool {
		c, err := b.store.Get(ctx, filler.ID())
		return err == nil && c.TLS != nil
	})
}
