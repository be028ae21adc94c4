package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// TestContextOnMiss: a Get that must read Redis honours its context.
func TestContextOnMiss(t *testing.T) {
	srv := startRedis(t)
	a := newNode(t, srv.Addr(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.store.Get(ctx, strings.Repeat("ab", 32))
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
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
