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
	"testing"

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
