package redisstore

// Writes: concurrent Adds merging across nodes.

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
