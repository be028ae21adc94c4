package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/mtlsgo/mtls/storetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConformance runs the conformance suite of package storetest over
// stores on one redis-server, each under a prefix of its own (so each
// starts empty), without an organisation: the suite expects Add to return
// the bare fingerprint.
func TestConformance(t *testing.T) {
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr(), "conformance")
	var n atomic.Int64
	storetest.TestStore(t, func(t *testing.T) mtls.CertStore {
		s, err := New(context.Background(), rdb, []byte(testSecret), WithPrefix(fmt.Sprintf("conf%d:", n.Add(1))))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestConformanceCluster runs the suite over a *redis.ClusterClient on a
// one-node Redis Cluster: a script or transaction whose keys were in
// several slots would fail there with CROSSSLOT.
func TestConformanceCluster(t *testing.T) {
	srv := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	admin := srv.admin(t)
	ctx := context.Background()
	require.NoError(t, admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err())
	eventually(t, "cluster state ok", func() bool {
		info, err := admin.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr()}})
	t.Cleanup(func() { rdb.Close() })
	var n atomic.Int64
	storetest.TestStore(t, func(t *testing.T) mtls.CertStore {
		s, err := New(ctx, rdb, []byte(testSecret), WithPrefix(fmt.Sprintf("cluster%d:", n.Add(1))))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestNewRejects(t *testing.T) {
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr(), "new")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		opts []Option
		want string
	}{
		{"NilClient", nil, nil, "nil Redis client"},
		{"BraceInPrefix", rdb, []Option{WithPrefix("a{b}:")}, "hash tag"},
		{"OrgNotAlnum", rdb, []Option{WithOrg("ac-me")}, "not letters and digits"},
		{"OrgWithSpace", rdb, []Option{WithOrg("acme ")}, "not letters and digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(ctx, tc.rdb, []byte(testSecret), tc.opts...)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "mtls: ") && !strings.Contains(err.Error(), "mtls: mtls:"), "%q", err)
		})
	}
	t.Run("RedisDown", func(t *testing.T) {
		down := newClient(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "down")
		_, err := New(ctx, down, []byte(testSecret))
		assert.ErrorIs(t, err, ErrUnavailable)
	})
	t.Run("CancelledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := New(cctx, rdb, []byte(testSecret))
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestZeroStoreIsClosed(t *testing.T) {
	var s Store
	ctx := context.Background()
	_, err := s.Add(ctx, []byte("x"))
	assert.ErrorIs(t, err, mtls.ErrClosed)
	_, err = s.Get(ctx, strings.Repeat("a", 64))
	assert.ErrorIs(t, err, mtls.ErrClosed)
	_, err = s.Metadata(ctx, strings.Repeat("a", 64))
	assert.ErrorIs(t, err, mtls.ErrClosed)
	assert.ErrorIs(t, s.Delete(ctx, strings.Repeat("a", 64)), mtls.ErrClosed)
	_, err = s.List(ctx)
	assert.ErrorIs(t, err, mtls.ErrClosed)
	s.Notify(func(string) {})()
	assert.NoError(t, s.Close())
	var nilStore *Store
	_, err = nilStore.Get(ctx, strings.Repeat("a", 64))
	assert.ErrorIs(t, err, mtls.ErrClosed)
}

func TestClose(t *testing.T) {
	srv := startRedis(t)
	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, srv.Addr(), "b")
	ca := mtlstest.MustCA(t, "close CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "c"})
	ctx := context.Background()
	var calls atomic.Int64
	a.store.Notify(func(string) { calls.Add(1) })
	require.NoError(t, a.store.Close())
	require.NoError(t, a.store.Close())
	_, err := a.store.Get(ctx, leaf.ID())
	assert.ErrorIs(t, err, mtls.ErrClosed)
	_, err = a.store.Add(ctx, leaf.PEM())
	assert.ErrorIs(t, err, mtls.ErrClosed)
	// Changes by another node never reach a closed store's subscribers:
	// once a third node has seen b's change, a's subscriber has not.
	c := newNode(t, srv.Addr(), "c")
	seen := make(chan struct{}, 1)
	c.store.Notify(func(string) { seen <- struct{}{} })
	_, err = b.store.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	select {
	case <-seen:
	case <-time.After(waitFor):
		t.Fatal("c did not see b's change")
	}
	assert.Zero(t, calls.Load())
}

// TestSecrets: every node of a scope needs the secret; a wrong or missing
// one gives ErrDecrypt, and the key derivation record is written once.
func TestSecrets(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "secret CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "k"})
	right := newNode(t, srv.Addr(), "right")
	wrong := newNodeSecret(t, srv.Addr(), "wrong", []byte("another secret"))
	none := newNodeSecret(t, srv.Addr(), "none", nil)

	// Before any key was stored there is no record: no key to open.
	id, err := none.store.Add(ctx, leaf.CertPEM)
	require.NoError(t, err)
	_, err = none.store.Add(ctx, leaf.PEM())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no secret")
	assert.NotContains(t, err.Error(), "BEGIN")

	_, err = right.store.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	c, err := right.store.Get(ctx, id)
	require.NoError(t, err)
	require.NotNil(t, c.TLS)

	eventually(t, "wrong secret sees the key attached", func() bool {
		_, err := wrong.store.Get(ctx, id)
		return isErr(err, mtls.ErrDecrypt)
	})
	_, err = wrong.store.Get(ctx, id)
	assert.ErrorIs(t, err, mtls.ErrDecrypt)
	assert.Contains(t, err.Error(), "wrong secret")
	m, err := wrong.store.Metadata(ctx, id)
	require.NoError(t, err, "metadata needs no secret")
	assert.True(t, m.HasPrivateKey)
	other := ca.MustIssue(t, mtlstest.Options{CommonName: "other"})
	_, err = wrong.store.Add(ctx, other.PEM())
	assert.ErrorIs(t, err, mtls.ErrDecrypt, "a wrong secret must not seal keys under another key")

	eventually(t, "no secret sees the key attached", func() bool {
		_, err := none.store.Get(ctx, id)
		return isErr(err, mtls.ErrDecrypt)
	})

	// One record, written once: a second node with the right secret
	// reads the first one's keys.
	rec, err := srv.admin(t).Get(ctx, "mtls:{_}:kdf").Result()
	require.NoError(t, err)
	assert.Contains(t, rec, `"kdf": "argon2id"`)
	second := newNode(t, srv.Addr(), "second")
	c, err = second.store.Get(ctx, id)
	require.NoError(t, err)
	assert.NotNil(t, c.TLS)
	_, err = second.store.Add(ctx, other.PEM())
	require.NoError(t, err)
	rec2, err := srv.admin(t).Get(ctx, "mtls:{_}:kdf").Result()
	require.NoError(t, err)
	assert.Equal(t, rec, rec2, "the key derivation record was replaced")
}

// TestKDFRace: nodes that store their first keys at once agree on one key
// derivation record (SETNX), and read each other's keys.
func TestKDFRace(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "race CA")
	const n = 6
	nodes := make([]*node, n)
	leaves := make([]*mtlstest.Leaf, n)
	for i := range n {
		nodes[i] = newNode(t, srv.Addr(), fmt.Sprintf("n%d", i))
		leaves[i] = ca.MustIssue(t, mtlstest.Options{CommonName: fmt.Sprint(i)})
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := nodes[i].store.Add(ctx, leaves[i].PEM())
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for i := range n {
		for j := range n {
			c, err := nodes[i].store.Get(ctx, leaves[j].ID())
			require.NoError(t, err, "node %d, key of node %d", i, j)
			require.NotNil(t, c.TLS)
		}
	}
}

// TestMergeAcrossNodes: nodes adding to one entry at once (its
// certificate, its key, longer chains) lose nothing: the entry ends with
// the key and the longest chain, on every node.
func TestMergeAcrossNodes(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	root := mtlstest.MustCA(t, "merge root")
	inter, err := root.Intermediate("merge intermediate")
	require.NoError(t, err)
	leaf := inter.MustIssue(t, mtlstest.Options{CommonName: "merged"})
	blocks := splitPEM(leaf.CertPEM)
	require.Len(t, blocks, 2)
	datas := [][]byte{blocks[0], leaf.CertPEM, append(bytes.Clone(blocks[0]), leaf.KeyPEM...)}
	nodes := []*node{newNode(t, srv.Addr(), "a"), newNode(t, srv.Addr(), "b"), newNode(t, srv.Addr(), "c")}
	for round := range 20 {
		var wg sync.WaitGroup
		for i, nd := range nodes {
			wg.Go(func() {
				_, err := nd.store.Add(ctx, datas[(i+round)%len(datas)])
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		for _, nd := range nodes {
			eventually(t, "node "+nd.name+" converges", func() bool {
				c, err := nd.store.Get(ctx, leaf.ID())
				return err == nil && c.TLS != nil && len(c.TLS.Certificate) == 2
			})
		}
		for _, nd := range nodes {
			require.NoError(t, nd.store.Delete(ctx, leaf.ID()))
			for _, o := range nodes {
				eventually(t, "node "+o.name+" sees the deletion", func() bool {
					_, err := o.store.Get(ctx, leaf.ID())
					return isErr(err, mtls.ErrNotFound)
				})
			}
			_, err := nd.store.Add(ctx, datas[0])
			require.NoError(t, err)
		}
		for _, nd := range nodes {
			if err := nd.store.Delete(ctx, leaf.ID()); err != nil {
				require.ErrorIs(t, err, mtls.ErrNotFound)
			}
		}
	}
}

func splitPEM(data []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.Index(data, []byte("-----END "))
		if i < 0 {
			return out
		}
		j := bytes.IndexByte(data[i:], '\n')
		out = append(out, bytes.Clone(data[:i+j+1]))
		data = data[i+j+1:]
	}
}

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

// TestContextOnMiss: a Get that must read Redis honours its context.
func TestContextOnMiss(t *testing.T) {
	srv := startRedis(t)
	a := newNode(t, srv.Addr(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.store.Get(ctx, strings.Repeat("ab", 32))
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
}

// TestACL: a Redis user limited to the commands and keys the package
// documentation lists can run a fleet.
func TestACL(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	require.NoError(t, srv.admin(t).Do(ctx, "ACL", "SETUSER", "fleet", "on", ">fleet password", "resetkeys", "~mtls:*",
		"-@all", "+evalsha", "+eval", "+hget", "+hmget", "+hkeys", "+get", "+setnx", "+xread",
		"+hset", "+hdel", "+hincrby", "+xadd", "+xrange", "+xrevrange",
		"+hello", "+ping", "+client|setname").Err()) // what go-redis sends on connecting

	open := func(name string) *Store {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "fleet", Password: "fleet password", ClientName: name})
		t.Cleanup(func() { c.Close() })
		s, err := New(ctx, c, []byte(testSecret))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	ca := mtlstest.MustCA(t, "acl CA")
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "acl"})
	id, err := a.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	c, err := b.Get(ctx, id)
	require.NoError(t, err)
	require.NotNil(t, c.TLS)
	ids, err := b.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{id}, ids)
	require.NoError(t, a.Delete(ctx, id))
	eventually(t, "b sees the deletion", func() bool {
		_, err := b.Get(ctx, id)
		return errors.Is(err, mtls.ErrNotFound)
	})
	// The user cannot touch another prefix.
	other := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "fleet", Password: "fleet password"})
	defer other.Close()
	_, err = New(ctx, other, nil, WithPrefix("other:"))
	require.Error(t, err)
	t.Logf("another prefix: %v", err)
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

// TestNilContext: like the core stores, a Store takes a nil context as
// the background one.
func TestNilContext(t *testing.T) {
	srv := startRedis(t)
	var ctx context.Context // nil
	rdb := newClient(t, srv.Addr(), "nil")
	s, err := New(ctx, rdb, []byte(testSecret))
	require.NoError(t, err)
	defer s.Close()
	leaf := mtlstest.MustCA(t, "nil CA").MustIssue(t, mtlstest.Options{CommonName: "nil"})
	id, err := s.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	other, err := New(ctx, rdb, []byte(testSecret))
	require.NoError(t, err)
	defer other.Close()
	c, err := other.Get(ctx, id)
	require.NoError(t, err)
	assert.NotNil(t, c.TLS)
	_, err = other.Metadata(ctx, id)
	require.NoError(t, err)
	ids, err := s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{id}, ids)
	require.NoError(t, s.Delete(ctx, id))
}
