package redisstore

// Reads and the local cache: warm Gets without a round trip, corrupt
// entries, and a read under way when a change arrives.

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWarmGetNoRoundTrip counts, on the server, the commands a cached Get
// makes: none.
func TestWarmGetNoRoundTrip(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, srv.Addr(), "b")
	ca := mtlstest.MustCA(t, "warm CA")
	var ids []string
	for i := range 20 {
		id, err := a.store.Add(ctx, ca.MustIssue(t, mtlstest.Options{CommonName: fmt.Sprint(i)}).PEM())
		require.NoError(t, err)
		ids = append(ids, id)
	}
	missing := ca.MustIssue(t, mtlstest.Options{CommonName: "missing"}).ID()
	for _, id := range append(ids, missing) { // cold: one HMGET each
		b.store.Get(ctx, id)
	}
	admin := srv.admin(t)
	before := commandCalls(t, admin)
	for range 50 {
		for _, id := range ids {
			c, err := b.store.Get(ctx, id)
			require.NoError(t, err)
			require.NotNil(t, c.TLS)
		}
		_, err := b.store.Get(ctx, missing)
		require.ErrorIs(t, err, mtls.ErrNotFound)
		_, err = b.store.Metadata(ctx, ids[0])
		require.NoError(t, err)
	}
	calls := diffCalls(before, commandCalls(t, admin))
	delete(calls, "info")
	delete(calls, "xread")                                     // the followers' blocking reads
	delete(calls, "evalsha")                                   // their idle checks ...
	delete(calls, "xrange")                                    // ... which read the last entry
	delete(calls, "hget")                                      // ... and the counter
	assert.Empty(t, calls, "warm Gets sent commands to Redis") // HMGET, the read, above all
	assert.Zero(t, testing.AllocsPerRun(100, func() { b.store.Get(ctx, ids[0]) }), "a warm Get allocates")
}

// TestCorruptEntry: an entry whose text fails its checksum is not found,
// and Add replaces it.
func TestCorruptEntry(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	a := newNode(t, srv.Addr(), "a")
	ca := mtlstest.MustCA(t, "corrupt CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "c"})
	admin := srv.admin(t)
	require.NoError(t, admin.HSet(ctx, "mtls:{_}:certs", leaf.ID(), "-----BEGIN CERTIFICATE-----\nnot this\n").Err())
	_, err := a.store.Get(ctx, leaf.ID())
	assert.ErrorIs(t, err, mtls.ErrNotFound)
	assert.Contains(t, err.Error(), "corrupt")
	id, err := a.store.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	c, err := a.store.Get(ctx, id)
	require.NoError(t, err)
	assert.NotNil(t, c.TLS)
}

// TestReadNeverCachedAfterChange: a read of Redis that began before a
// change, and ends after the change reached the node, returns what it
// read but is not cached: the next Get sees the change (a deletion is
// never undone by a read that was under way when it happened).
func TestReadNeverCachedAfterChange(t *testing.T) {
	for _, change := range []string{"attach key", "delete"} {
		t.Run(change, func(t *testing.T) {
			srv := startRedis(t)
			ctx := context.Background()
			a := newNode(t, srv.Addr(), "a")
			hold := &readHolder{}
			rdb := newClient(t, srv.Addr(), "b")
			rdb.AddHook(hold)
			b, err := New(ctx, rdb, []byte(testSecret))
			require.NoError(t, err)
			t.Cleanup(func() { b.Close() })
			ca := mtlstest.MustCA(t, "race CA")
			leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "raced"})
			data := leaf.CertPEM
			if change == "delete" {
				data = leaf.PEM()
			}
			id, err := a.store.Add(ctx, data)
			require.NoError(t, err)

			read, release := hold.arm()
			got := make(chan *mtls.Certificate, 1)
			go func() {
				c, err := b.Get(ctx, id)
				assert.NoError(t, err, "the read began before the change")
				got <- c
			}()
			<-read // b's HMGET has run in Redis; its reply is held
			if change == "delete" {
				require.NoError(t, a.store.Delete(ctx, id))
			} else {
				_, err = a.store.Add(ctx, leaf.PEM())
				require.NoError(t, err)
			}
			seq, err := srv.admin(t).HGet(ctx, "mtls:{_}:certs", "seq").Uint64()
			require.NoError(t, err)
			eventually(t, "b applies the change", func() bool { return b.appliedSeq() >= seq })
			close(release)
			<-got
			c, err := b.Get(ctx, id)
			if change == "delete" {
				assert.ErrorIs(t, err, mtls.ErrNotFound, "the deletion was undone by a read under way")
			} else {
				require.NoError(t, err)
				assert.NotNil(t, c.TLS, "the read under way cached the entry without its key")
			}
		})
	}
}

// readHolder holds the reply of a client's next HMGET, once armed: it
// signals when the command has run, and returns when released.
type readHolder struct {
	mu      sync.Mutex
	read    chan struct{}
	release chan struct{}
}

func (h *readHolder) arm() (read, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.read, h.release = make(chan struct{}), make(chan struct{})
	return h.read, h.release
}

func (*readHolder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *readHolder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() != "hmget" {
			return err
		}
		h.mu.Lock()
		read, release := h.read, h.release
		h.read = nil
		h.mu.Unlock()
		if read != nil {
			close(read)
			<-release
		}
		return err
	}
}

func (*readHolder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
