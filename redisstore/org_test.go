package redisstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOrgScoping: stores of two organisations and one without on one
// Redis and prefix. Each reads, lists and deletes only its own entries;
// another organisation's ID is not found, even for the same certificate.
func TestOrgScoping(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "org CA")
	shared := ca.MustIssue(t, mtlstest.Options{CommonName: "shared"})
	only := ca.MustIssue(t, mtlstest.Options{CommonName: "globex only"})
	fp := shared.ID()

	acme := newNode(t, srv.Addr(), "acme", WithOrg("acme"))
	acme2 := newNode(t, srv.Addr(), "acme2", WithOrg("acme")) // another node of acme
	globex := newNode(t, srv.Addr(), "globex", WithOrg("globex"))
	plain := newNode(t, srv.Addr(), "plain")

	var mu sync.Mutex
	var notified []string
	acme.store.Notify(func(id string) { mu.Lock(); notified = append(notified, id); mu.Unlock() })

	id, err := acme.store.Add(ctx, shared.PEM())
	require.NoError(t, err)
	assert.Equal(t, "acme"+fp, id, "Add returns the org-prefixed ID")
	mu.Lock()
	assert.Equal(t, []string{"acme" + fp}, notified, "notifications carry the org-prefixed ID")
	mu.Unlock()
	gid, err := globex.store.Add(ctx, shared.CertPEM) // the same certificate, without its key
	require.NoError(t, err)
	assert.Equal(t, "globex"+fp, gid)
	_, err = globex.store.Add(ctx, only.PEM())
	require.NoError(t, err)

	// Both forms of the ID, within the organisation.
	for _, form := range []string{"acme" + fp, fp} {
		c, err := acme.store.Get(ctx, form)
		require.NoError(t, err, form)
		assert.Equal(t, "acme"+fp, c.ID)
		assert.Equal(t, fp, c.Fingerprint)
		assert.NotNil(t, c.TLS, "acme's entry has its key")
		m, err := acme.store.Metadata(ctx, form)
		require.NoError(t, err)
		assert.Equal(t, "acme"+fp, m.ID)
		assert.Equal(t, fp, m.Fingerprint)
		c, err = acme2.store.Get(ctx, form)
		require.NoError(t, err, "another node of acme")
		assert.Equal(t, "acme"+fp, c.ID)
	}
	// globex's entry of the same certificate is globex's: no key.
	c, err := globex.store.Get(ctx, fp)
	require.NoError(t, err)
	assert.Nil(t, c.TLS)
	assert.Equal(t, "globex"+fp, c.ID)

	// Another organisation's ID is not found, even for the same
	// certificate; and what only globex holds is not acme's.
	for _, bad := range []string{"globex" + fp, "Acme" + fp, "acme" + only.ID(), only.ID(), "globex" + only.ID()} {
		_, err := acme.store.Get(ctx, bad)
		assert.ErrorIs(t, err, mtls.ErrNotFound, bad)
		_, err = acme.store.Metadata(ctx, bad)
		assert.ErrorIs(t, err, mtls.ErrNotFound, bad)
		assert.ErrorIs(t, acme.store.Delete(ctx, bad), mtls.ErrNotFound, bad)
	}
	_, err = acme.store.Get(ctx, "globex"+fp)
	assert.Contains(t, err.Error(), "organisation")

	ids, err := acme.store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"acme" + fp}, ids)
	ids, err = globex.store.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, slices.Sorted(slices.Values([]string{"globex" + fp, "globex" + only.ID()})), ids)
	ids, err = plain.store.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, ids, "a store without organisation sees none of theirs")
	// ... and reads its own scope whatever prefix an ID carries.
	_, err = plain.store.Get(ctx, "acme"+fp)
	assert.ErrorIs(t, err, mtls.ErrNotFound)

	// Deleting with the bare fingerprint deletes acme's entry only.
	require.NoError(t, acme.store.Delete(ctx, fp))
	_, err = acme.store.Get(ctx, "acme"+fp)
	assert.ErrorIs(t, err, mtls.ErrNotFound)
	eventually(t, "acme's other node sees the deletion", func() bool {
		_, err := acme2.store.Get(ctx, fp)
		return errors.Is(err, mtls.ErrNotFound)
	})
	_, err = globex.store.Get(ctx, "globex"+fp)
	assert.NoError(t, err, "globex's entry survived acme's deletion")
}

// TestOrgSelector: a Selector over an organisation's store takes the
// organisation's ID in both forms, and refuses another organisation's
// (New and Update check values when they are set; a deletion fails closed).
func TestOrgSelector(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "org selector CA")
	up := startUpstream(t, ca, ca)
	leaf := ca.MustIssue(t, mtlstest.Options{CommonName: "acme client"})
	fp := leaf.ID()
	acme := newNode(t, srv.Addr(), "acme", WithOrg("acme"))
	acme2 := newNode(t, srv.Addr(), "acme2", WithOrg("acme"))
	globex := newNode(t, srv.Addr(), "globex", WithOrg("globex"))
	_, err := acme.store.Add(ctx, leaf.PEM())
	require.NoError(t, err)
	_, err = globex.store.Add(ctx, leaf.PEM()) // globex holds the same certificate, key and all
	require.NoError(t, err)

	for _, value := range []string{"acme" + fp, fp} {
		sel := newSelector(t, acme2.store, value, ca)
		ans, err := call(sel.RoundTripper(), up.URL)
		require.NoError(t, err, value)
		assert.Equal(t, fp, ans.certID)
	}

	_, err = mtls.New(acme2.store, policy("globex"+fp, ca))
	require.ErrorIs(t, err, mtls.ErrNotFound, "another organisation's ID must be refused when set")
	var pe *mtls.PolicyError
	require.ErrorAs(t, err, &pe)
	t.Logf("refused: %v", err)

	sel := newSelector(t, acme2.store, "acme"+fp, ca)
	require.ErrorIs(t, sel.Update(policy("globex"+fp, ca)), mtls.ErrNotFound)
	ans, err := call(sel.RoundTripper(), up.URL)
	require.NoError(t, err, "the old policy stays after a refused Update")
	assert.Equal(t, fp, ans.certID)

	// Deleting globex's entry does not touch acme's selector; deleting
	// acme's (with the bare fingerprint, on the other node) fails it
	// closed.
	require.NoError(t, globex.store.Delete(ctx, fp))
	_, err = call(sel.RoundTripper(), up.URL)
	require.NoError(t, err)
	require.NoError(t, acme.store.Delete(ctx, fp))
	eventually(t, "acme2's selector fails closed", func() bool {
		_, err := call(sel.RoundTripper(), up.URL)
		return errors.Is(err, mtls.ErrNotFound)
	})
}
