package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// load sends requests through a Selector's RoundTripper until stopped,
// closing idle connections now and then so that new handshakes happen too,
// and counts what succeeded and what failed.
type load struct {
	ok     atomic.Int64
	mu     sync.Mutex
	errs   []error
	stop   chan struct{}
	wg     sync.WaitGroup
	wantID string
}

func startLoad(rt http.RoundTripper, url, wantID string, workers int) *load {
	l := &load{stop: make(chan struct{}), wantID: wantID}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if (i+w)%4 == 0 {
					closeIdle(rt)
				}
				ans, err := call(rt, url)
				if err == nil && ans.certID != l.wantID {
					err = fmt.Errorf("upstream saw certificate %s, want %s", ans.certID, l.wantID)
				}
				if err != nil {
					l.mu.Lock()
					l.errs = append(l.errs, err)
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

func (l *load) end() []error {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs
}

// TestRedisRestart: Redis is stopped (SIGTERM) while three nodes serve
// requests. No request fails whose certificate was cached; writes fail
// with ErrUnavailable and a clear message; every node reports the outage.
// Redis is started again on the same port and directory; one node comes
// back first and deletes the certificate; when the others come back, they
// apply that deletion from the change log and fail closed.
func TestRedisRestart(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "restart CA")
	up := startUpstream(t, ca, ca)
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "cached"})
	spare := ca.MustIssue(t, mtlstest.Options{CommonName: "spare"})

	// a reaches Redis directly; b and c through proxies that the test
	// keeps shut after the restart, so that a is back first.
	pb, pc := newProxy(t, srv.Addr()), newProxy(t, srv.Addr())
	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, pb.Addr(), "b")
	c := newNode(t, pc.Addr(), "c")
	nodes := []*node{a, b, c}
	id, err := a.store.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	sels := map[*node]*mtls.Selector{}
	loads := map[*node]*load{}
	for _, n := range nodes {
		sels[n] = newSelector(t, n.store, id, ca)
		_, err := call(sels[n].RoundTripper(), up.URL)
		require.NoError(t, err)
		loads[n] = startLoad(sels[n].RoundTripper(), up.URL, id, 4)
	}
	waitRequests := func(why string) {
		t.Helper()
		for _, n := range nodes {
			from := loads[n].ok.Load()
			eventually(t, fmt.Sprintf("%s: node %s serves requests", why, n.name), func() bool { return loads[n].ok.Load() >= from+20 })
		}
	}
	waitRequests("before the outage")

	srv.stop()
	for _, n := range nodes {
		eventually(t, "node "+n.name+" reports the outage", func() bool { return n.events.count(EventOutage) > 0 })
	}
	waitRequests("during the outage")

	// Writes fail, clearly, and change nothing.
	_, err = a.store.Add(ctx, spare.PEM())
	require.ErrorIs(t, err, ErrUnavailable)
	t.Logf("Add during the outage: %v", err)
	assert.Contains(t, err.Error(), "Redis is unavailable")
	assert.Contains(t, err.Error(), "nothing was changed")
	assert.True(t, strings.HasPrefix(err.Error(), "mtls: ") && !strings.Contains(err.Error(), "mtls: mtls:"), "%q", err)
	err = b.store.Delete(ctx, id)
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = c.store.List(ctx)
	require.ErrorIs(t, err, ErrUnavailable)
	// Reads of cached entries are served; others fail with ErrUnavailable.
	cert, err := b.store.Get(ctx, id)
	require.NoError(t, err)
	assert.NotNil(t, cert.TLS)
	_, err = b.store.Get(ctx, spare.ID())
	require.ErrorIs(t, err, ErrUnavailable)

	// Redis comes back; b and c stay cut off until a has deleted.
	pb.cut()
	pc.cut()
	srv.start()
	eventually(t, "a recovers", func() bool { return a.events.count(EventRecovery) > 0 })
	waitRequests("after a recovered")
	for _, n := range nodes {
		if errs := loads[n].end(); len(errs) > 0 {
			t.Errorf("node %s: %d requests failed with a cached certificate, first: %v", n.name, len(errs), errs[0])
		}
		t.Logf("node %s: %d requests served, none failed", n.name, loads[n].ok.Load())
	}
	require.NoError(t, a.store.Delete(ctx, id))
	_, err = call(sels[a].RoundTripper(), up.URL)
	require.ErrorIs(t, err, mtls.ErrNotFound, "a's own deletion")

	pb.restore()
	pc.restore()
	start := time.Now()
	for _, n := range []*node{b, c} {
		eventually(t, "node "+n.name+" converges", func() bool {
			_, err := call(sels[n].RoundTripper(), up.URL)
			return errors.Is(err, mtls.ErrNotFound)
		})
		t.Logf("node %s applied the deletion within %v of its link being restored; events: %v", n.name, time.Since(start), n.events)
		assert.Positive(t, n.events.count(EventRecovery))
		assert.Zero(t, n.events.count(EventResync), "the change log survived the restart: no resynchronisation needed")
	}
	// The store b could not read during the outage is notified and
	// readable now.
	_, err = a.store.Add(ctx, spare.PEM())
	require.NoError(t, err)
	eventually(t, "b reads what failed during the outage", func() bool {
		_, err := b.store.Get(ctx, spare.ID())
		return err == nil
	})
}

// TestOutageFailedReadNotified: a Selector whose certificate changed
// just before its node lost Redis fails its next requests (the store
// cannot read the entry again, and the Selector keeps that failure), and
// is notified when Redis is back, so that it recovers without any further
// change of the entry. The follower's link stays up, the reads fail: a
// hook on b's client fails its HMGETs with a connection reset.
func TestOutageFailedReadNotified(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "notified CA")
	root := mtlstest.MustCA(t, "notified root")
	inter, err := root.Intermediate("notified intermediate")
	require.NoError(t, err)
	leaf := inter.MustIssue(t, mtlstest.Options{CommonName: "changed"})
	up := startUpstream(t, ca, root) // clients must chain to root, through inter
	a := newNode(t, srv.Addr(), "a")
	var failReads atomic.Bool
	rdb := newClient(t, srv.Addr(), "b")
	rdb.AddHook(readFailer{&failReads})
	events := &eventLog{}
	bs, err := New(ctx, rdb, []byte(testSecret), WithEventHook(events.hook))
	require.NoError(t, err)
	t.Cleanup(func() { bs.Close() })

	id, err := a.store.Add(ctx, append(splitPEM(leaf.CertPEM)[0], leaf.KeyPEM...))
	require.NoError(t, err)
	sel := newSelector(t, bs, id, ca)
	_, err = call(sel.RoundTripper(), up.URL)
	require.Error(t, err, "a chain without its intermediate verified")

	// a replaces the chain; b applies the change (its cache and its
	// selector drop the entry) but cannot read it again.
	failReads.Store(true)
	_, err = a.store.Add(ctx, leaf.CertPEM)
	require.NoError(t, err)
	seq, err := srv.admin(t).HGet(ctx, "mtls:{_}:certs", "seq").Uint64()
	require.NoError(t, err)
	eventually(t, "b applies the change", func() bool { return bs.appliedSeq() >= seq })
	_, err = call(sel.RoundTripper(), up.URL)
	require.ErrorIs(t, err, ErrUnavailable, "b has nothing cached to serve")
	require.Positive(t, events.count(EventOutage))

	failReads.Store(false)
	start := time.Now()
	eventually(t, "b's selector presents the new chain", func() bool {
		ans, err := call(sel.RoundTripper(), up.URL)
		return err == nil && ans.certID == id && ans.chain == 2
	})
	t.Logf("recovered %v after reads work again; events %v", time.Since(start), events)
	assert.Positive(t, events.count(EventRecovery))
}

// readFailer fails the HMGETs of a client while on is set, as a reset
// connection would.
type readFailer struct{ on *atomic.Bool }

func (readFailer) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h readFailer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.on.Load() && cmd.Name() == "hmget" {
			err := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (readFailer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestClientKill: a node whose connections Redis kills (CLIENT KILL TYPE
// normal, then by ID) reconnects and still converges.
func TestClientKill(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	admin := srv.admin(t)
	ca := mtlstest.MustCA(t, "kill CA")
	up := startUpstream(t, ca, ca)
	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, srv.Addr(), "b")
	c := newNode(t, srv.Addr(), "c")

	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "kill"})
	id, err := a.store.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	selB := newSelector(t, b.store, id, ca)
	selC := newSelector(t, c.store, id, ca)

	killed, err := admin.ClientKillByFilter(ctx, "TYPE", "normal").Result()
	require.NoError(t, err)
	require.Positive(t, killed)
	t.Logf("CLIENT KILL TYPE normal: %d connections", killed)
	require.NoError(t, a.store.Delete(ctx, id))
	for name, sel := range map[string]*mtls.Selector{"b": selB, "c": selC} {
		start := time.Now()
		eventually(t, name+" converges after CLIENT KILL TYPE normal", func() bool {
			_, err := call(sel.RoundTripper(), up.URL)
			return errors.Is(err, mtls.ErrNotFound)
		})
		t.Logf("%s converged %v after the deletion", name, time.Since(start))
	}

	// Kill b's connections by ID, over and over, with changes between.
	for round := range 5 {
		list, err := admin.ClientList(ctx).Result()
		require.NoError(t, err)
		var ids []string
		for line := range strings.SplitSeq(list, "\n") {
			if strings.Contains(line, " name=b ") {
				f := strings.Fields(line)[0] // id=N
				ids = append(ids, strings.TrimPrefix(f, "id="))
			}
		}
		require.NotEmpty(t, ids, "no connection of b in CLIENT LIST")
		for _, cid := range ids {
			require.NoError(t, admin.ClientKillByFilter(ctx, "ID", cid).Err())
		}
		if round%2 == 0 {
			_, err = a.store.Add(ctx, leaf.PEM())
			require.NoError(t, err)
			eventually(t, fmt.Sprintf("round %d: b sees the addition", round), func() bool {
				ans, err := call(selB.RoundTripper(), up.URL)
				return err == nil && ans.certID == id
			})
		} else {
			require.NoError(t, a.store.Delete(ctx, id))
			eventually(t, fmt.Sprintf("round %d: b sees the deletion", round), func() bool {
				_, err := call(selB.RoundTripper(), up.URL)
				return errors.Is(err, mtls.ErrNotFound)
			})
		}
	}
	t.Logf("b's events: %v", b.events)
}
