package redisstore

// Benchmarks against a real redis-server on loopback:
//
//	go test -run '^$' -bench . -benchtime 20x
//
// BenchmarkLookup: 1,000 certificates, 4 nodes, 10,000 lookups per op
// spread over the nodes (2,500 each, in parallel): lookups per second, and
// Redis commands per lookup counted on the server (INFO commandstats
// before and after; the followers' own commands, listed, are left out).
// BenchmarkPropagation: 100 changes per op made on one node, and the time
// until each of 3 other nodes' subscribers is called: median, 99th
// percentile and maximum.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

const (
	benchCerts   = 1000
	benchNodes   = 4
	benchLookups = 10000
)

// followerCommands are what the change log followers send on their own,
// whatever the lookups: the blocking reads and the idle check (a script
// reading the counter and the last log entry).
var followerCommands = []string{"xread", "evalsha", "eval", "xrange", "hget"}

// benchFleet is a Redis with benchCerts certificates and the IDs.
type benchFleet struct {
	srv   *redisServer
	admin *redis.Client
	ids   []string
}

func newBenchFleet(b *testing.B) *benchFleet {
	b.Helper()
	srv := startRedis(b)
	f := &benchFleet{srv: srv, admin: srv.admin(b)}
	ca := mtlstest.MustCA(b, "bench CA")
	writer := newNode(b, srv.Addr(), "writer")
	ctx := context.Background()
	for i := range benchCerts {
		id, err := writer.store.Add(ctx, ca.MustIssue(b, mtlstest.Options{CommonName: fmt.Sprint("bench ", i)}).PEM())
		require.NoError(b, err)
		f.ids = append(f.ids, id)
	}
	return f
}

// nodes opens n stores, each with a client of its own.
func (f *benchFleet) nodes(b *testing.B, n int) []*node {
	out := make([]*node, n)
	for i := range out {
		out[i] = newNode(b, f.srv.Addr(), fmt.Sprint("node", i))
	}
	return out
}

// lookups runs benchLookups Gets spread over the nodes, in parallel.
func (f *benchFleet) lookups(b *testing.B, nodes []*node, seed uint64) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			for range benchLookups / len(nodes) {
				c, err := n.store.Get(ctx, f.ids[r.IntN(len(f.ids))])
				if err != nil || c.TLS == nil {
					b.Errorf("Get: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// countCommands reports the commands sent during fn per lookup made (fn
// returns how many), leaving out INFO and the followers' own.
func (f *benchFleet) countCommands(b *testing.B, fn func() int) {
	before := commandCalls(b, f.admin)
	lookups := fn()
	calls := diffCalls(before, commandCalls(b, f.admin))
	delete(calls, "info")
	bg := map[string]int64{}
	for _, c := range followerCommands {
		if n, ok := calls[c]; ok {
			bg[c] = n
			delete(calls, c)
		}
	}
	var n int64
	for _, v := range calls {
		n += v
	}
	b.ReportMetric(float64(n)/float64(lookups), "redis-cmds/lookup")
	b.Logf("%d lookups: commands %v; followers' own, left out: %v", lookups, calls, bg)
}

func BenchmarkLookup(b *testing.B) {
	f := newBenchFleet(b)
	b.Run("warm", func(b *testing.B) {
		nodes := f.nodes(b, benchNodes)
		ctx := context.Background()
		for _, n := range nodes { // fill the caches: every entry read and decrypted
			for _, id := range f.ids {
				_, err := n.store.Get(ctx, id)
				require.NoError(b, err)
			}
		}
		var lookups int
		f.countCommands(b, func() int {
			for i := 0; b.Loop(); i++ {
				f.lookups(b, nodes, uint64(i))
				lookups += benchLookups
			}
			return lookups
		})
		b.ReportMetric(float64(lookups)/b.Elapsed().Seconds(), "lookups/s")
	})
	b.Run("cold", func(b *testing.B) {
		// New nodes each op: the first lookup of each entry on a node
		// reads it (one HMGET) and decrypts its key.
		var lookups int
		before := commandCalls(b, f.admin)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			nodes := f.nodes(b, benchNodes)
			b.StartTimer()
			f.lookups(b, nodes, uint64(i))
			lookups += benchLookups
			b.StopTimer()
			for _, n := range nodes {
				n.store.Close()
			}
			b.StartTimer()
		}
		calls := diffCalls(before, commandCalls(b, f.admin))
		b.ReportMetric(float64(calls["hmget"])/float64(lookups), "hmget/lookup")
		b.ReportMetric(float64(lookups)/b.Elapsed().Seconds(), "lookups/s")
		b.Logf("%d lookups on new nodes: commands %v (New reads the log position with one EVALSHA per node)", lookups, calls)
	})
}

func BenchmarkPropagation(b *testing.B) {
	f := newBenchFleet(b)
	nodes := f.nodes(b, benchNodes)
	writer, observers := nodes[0], nodes[1:]
	ca := mtlstest.MustCA(b, "propagation CA")
	leaf := ca.MustIssue(b, mtlstest.Options{CommonName: "changing"})
	ctx := context.Background()
	type seen struct {
		node int
		at   time.Time
	}
	ch := make(chan seen, 64)
	for i, o := range observers {
		o.store.Notify(func(id string) {
			if id == leaf.ID() {
				ch <- seen{i, time.Now()}
			}
		})
	}
	var lat []time.Duration
	for b.Loop() {
		for i := range 100 {
			start := time.Now()
			if i%2 == 0 {
				_, err := writer.store.Add(ctx, leaf.PEM())
				require.NoError(b, err)
			} else {
				require.NoError(b, writer.store.Delete(ctx, leaf.ID()))
			}
			got := map[int]bool{}
			for len(got) < len(observers) {
				select {
				case s := <-ch:
					if !got[s.node] {
						got[s.node] = true
						lat = append(lat, s.at.Sub(start))
					}
				case <-time.After(waitFor):
					b.Fatalf("change %d not seen by every observer within %v", i, waitFor)
				}
			}
		}
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "median-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d observations (%d changes x %d observers)", len(lat), len(lat)/len(observers), len(observers))
}
