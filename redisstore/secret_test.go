package redisstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoSecretInRedis scans every key and value Redis holds, and the
// append-only files it wrote, for the secret and for the private keys
// added (PEM, DER in base64 and hex): only ciphertext reaches Redis.
func TestNoSecretInRedis(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "scan CA")
	var leaves []*mtlstest.Leaf
	for _, o := range []mtlstest.Options{
		{CommonName: "p256"}, {CommonName: "rsa", Key: mtlstest.RSA2048}, {CommonName: "ed25519", Key: mtlstest.Ed25519},
	} {
		leaves = append(leaves, ca.MustIssue(t, o))
	}
	a := newNode(t, srv.Addr(), "a")
	org := newNode(t, srv.Addr(), "acme", WithOrg("acme"))
	for _, l := range leaves {
		for _, n := range []*node{a, org} {
			_, err := n.store.Add(ctx, l.PEM())
			require.NoError(t, err)
		}
	}
	// Keys attached later, and a deletion, go through the same paths.
	extra := ca.MustIssue(t, mtlstest.Options{CommonName: "attached later"})
	_, err := a.store.Add(ctx, extra.CertPEM)
	require.NoError(t, err)
	_, err = a.store.Add(ctx, extra.PEM())
	require.NoError(t, err)
	leaves = append(leaves, extra)
	require.NoError(t, org.store.Delete(ctx, leaves[0].ID()))

	var needles [][]byte
	needles = append(needles, []byte(testSecret))
	for _, l := range leaves {
		b, _ := pem.Decode(l.KeyPEM)
		require.NotNil(t, b)
		needles = append(needles, l.KeyPEM,
			[]byte(base64.StdEncoding.EncodeToString(b.Bytes)[:48]), // the PEM body, however wrapped
			b.Bytes[len(b.Bytes)-32:],                               // raw DER: its end holds the key's bytes
			[]byte(hex.EncodeToString(b.Bytes[len(b.Bytes)-32:])))
	}
	needles = append(needles, []byte("PRIVATE KEY"))

	admin := srv.admin(t)
	values := dumpAll(t, admin)
	require.NotEmpty(t, values)
	sealed := 0
	for key, v := range values {
		for _, n := range needles {
			assert.False(t, bytes.Contains(v, n), "key %s holds secret material (%.40q)", key, n)
		}
		sealed += bytes.Count(v, []byte("MTLS SEALED KEY-----"))
	}
	// a holds every key, acme all but the one added later and the one
	// deleted; each sealed key has a BEGIN and an END line.
	assert.Equal(t, 2*(len(leaves)+len(leaves)-2), sealed, "every key is stored, sealed")

	require.NoError(t, admin.Do(ctx, "BGREWRITEAOF").Err())
	srv.stop() // flushes the append-only files
	files := 0
	require.NoError(t, filepath.WalkDir(srv.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, "appendonly") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			assert.False(t, bytes.Contains(data, n), "%s holds secret material (%.40q)", path, n)
		}
		return nil
	}))
	assert.Positive(t, files, "no append-only file found in %s", srv.dir)
}

// dumpAll returns every key of the server with its value in text: strings
// as they are, hashes as field=value lines, streams as their entries.
func dumpAll(t *testing.T, c *redis.Client) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := c.Type(ctx, key).Result()
		require.NoError(t, err)
		var b bytes.Buffer
		b.WriteString(key + "\n")
		switch typ {
		case "string":
			v, err := c.Get(ctx, key).Bytes()
			require.NoError(t, err)
			b.Write(v)
		case "hash":
			m, err := c.HGetAll(ctx, key).Result()
			require.NoError(t, err)
			for f, v := range m {
				fmt.Fprintf(&b, "%s=%s\n", f, v)
			}
		case "stream":
			msgs, err := c.XRange(ctx, key, "-", "+").Result()
			require.NoError(t, err)
			for _, m := range msgs {
				fmt.Fprintf(&b, "%s %v\n", m.ID, m.Values)
			}
		default:
			t.Fatalf("unexpected key %s of type %s", key, typ)
		}
		out[key] = b.Bytes()
	}
	require.NoError(t, iter.Err())
	return out
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
