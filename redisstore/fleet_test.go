package redisstore

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFleet: three nodes on one Redis. A certificate added on one is used
// by another through a Selector against a real mTLS upstream; rotation,
// replacement of a chain and deletion on one node reach the others' next
// connection. Propagation is polled for up to waitFor and logged.
func TestFleet(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	root := mtlstest.MustCA(t, "fleet root")
	inter, err := root.Intermediate("fleet intermediate")
	require.NoError(t, err)
	up := startUpstream(t, root, root) // clients must chain to root, through inter
	leaf1 := inter.MustIssue(t, mtlstest.Options{CommonName: "client one"})
	leaf2 := inter.MustIssue(t, mtlstest.Options{CommonName: "client two"})
	leaf3 := inter.MustIssue(t, mtlstest.Options{CommonName: "client three"})

	a := newNode(t, srv.Addr(), "a")
	b := newNode(t, srv.Addr(), "b")
	c := newNode(t, srv.Addr(), "c")

	// b asks for the next certificate before it exists: absent, and
	// remembered so.
	_, err = b.store.Get(ctx, leaf2.ID())
	require.ErrorIs(t, err, mtls.ErrNotFound)

	// Add on a, use on b and c.
	id1, err := a.store.Add(ctx, leaf1.PEM())
	require.NoError(t, err)
	selB := newSelector(t, b.store, id1, root)
	selC := newSelector(t, c.store, id1, root)
	for _, sel := range []*mtls.Selector{selB, selC} {
		ans, err := call(sel.RoundTripper(), up.URL)
		require.NoError(t, err)
		assert.Equal(t, id1, ans.certID)
		assert.Equal(t, 2, ans.chain)
	}

	// Rotation: a adds the new certificate; b's configuration moves to it
	// as soon as b's store has it (New and Update check values when set).
	id2, err := a.store.Add(ctx, leaf2.PEM())
	require.NoError(t, err)
	start := time.Now()
	eventually(t, "b can switch to the rotated certificate", func() bool {
		return selB.Update(policy(id2, root)) == nil
	})
	t.Logf("addition on a seen by b's store after %v", time.Since(start))
	ans, err := call(selB.RoundTripper(), up.URL)
	require.NoError(t, err)
	assert.Equal(t, id2, ans.certID, "b's next connection presents the new certificate")

	// a deletes the old one: c, still configured with it, fails closed on
	// its next request; b is unaffected.
	require.NoError(t, a.store.Delete(ctx, id1))
	start = time.Now()
	var lastErr error
	eventually(t, "c fails closed after the deletion", func() bool {
		_, lastErr = call(selC.RoundTripper(), up.URL)
		return errors.Is(lastErr, mtls.ErrNotFound)
	})
	t.Logf("deletion on a seen by c's next request after %v: %v", time.Since(start), lastErr)
	ans, err = call(selB.RoundTripper(), up.URL)
	require.NoError(t, err)
	assert.Equal(t, id2, ans.certID)

	// Replacement under the same ID: a stores leaf3 without its
	// intermediate, which the upstream cannot verify; then the chain. b's
	// next connection sends the longer chain.
	leafOnly := splitPEM(leaf3.CertPEM)[0]
	id3, err := a.store.Add(ctx, append(bytes.Clone(leafOnly), leaf3.KeyPEM...))
	require.NoError(t, err)
	eventually(t, "b can switch to leaf3", func() bool { return selB.Update(policy(id3, root)) == nil })
	_, err = call(selB.RoundTripper(), up.URL)
	require.Error(t, err, "the upstream accepted a chain without its intermediate")
	_, err = a.store.Add(ctx, leaf3.CertPEM)
	require.NoError(t, err)
	start = time.Now()
	eventually(t, "b sends the replaced chain", func() bool {
		ans, err = call(selB.RoundTripper(), up.URL)
		return err == nil && ans.chain == 2
	})
	t.Logf("replacement on a seen by b's next connection after %v", time.Since(start))
	assert.Equal(t, id3, ans.certID)

	// Deleting on b reaches a's store and c's.
	require.NoError(t, b.store.Delete(ctx, id3))
	_, err = call(selB.RoundTripper(), up.URL)
	assert.ErrorIs(t, err, mtls.ErrNotFound, "b's own deletion is notified before Delete returns")
	for _, n := range []*node{a, c} {
		start = time.Now()
		eventually(t, n.name+" sees b's deletion", func() bool {
			_, err := n.store.Get(ctx, id3)
			return errors.Is(err, mtls.ErrNotFound)
		})
		t.Logf("deletion on b seen by %s after %v", n.name, time.Since(start))
	}
}
