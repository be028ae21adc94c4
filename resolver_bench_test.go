package mtls

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mtlsgo/mtls/internal/hostmatch"
)

// Benchmarks of Resolve against two baselines, on one workload generator for
// every size:
//
//   - BenchmarkResolve: the compiled Resolver, every rule of the contract.
//   - BenchmarkResolveFixedLookup: the scheme gateways use today, a handful
//     of map lookups with string building per level ('*', '*.' + the host
//     minus its first label, the same with the port, the host, the host with
//     its port); it supports left-most wildcards only.
//   - BenchmarkResolveLinear: a scan over all patterns (up to 10,000).
//
// Targets at 10,000 patterns: Resolve at most 0.25x of the fixed lookup and
// at least 100x faster than the scan; Resolve with 100,000 patterns within
// 1.5x of Resolve with 10; 0 allocs/op.

var benchSizes = []int{10, 1000, 10000, 100000}

// benchWorkload returns an API and a gateway Map of n patterns in all,
// a realistic mix of exact, left-wildcard, middle-wildcard, port and IP
// patterns at both levels, and hosts to query, already normalised: at least
// 1,000 distinct hosts of every kind (exact, left wildcard, middle wildcard,
// port, IPv4, IPv6) and 1,000 misses, shuffled.
func benchWorkload(n int) (api, gateway Map, hosts []string) {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	api, gateway = Map{}, Map{}
	type kind struct {
		share int // percent of the patterns
		make  func(i int) string
		hosts func(pattern string, k int) string
	}
	port := func() string { return strconv.Itoa(1 + rng.IntN(65535)) }
	withPort := func(host string) string {
		if rng.IntN(2) == 0 {
			return host
		}
		return host + ":" + port()
	}
	fill := func(pattern string, k int) string {
		return strings.ReplaceAll(pattern, "*", "h"+strconv.Itoa(k))
	}
	kinds := []kind{
		{30, func(i int) string {
			if i%3 == 2 {
				return fmt.Sprintf("svc%d.team%d.example.com:8443", i, i%97)
			}
			return fmt.Sprintf("svc%d.team%d.example.com", i, i%97)
		}, func(p string, k int) string {
			if strings.Contains(p, ":") {
				return p
			}
			return withPort(p)
		}},
		{20, func(i int) string { return fmt.Sprintf("*.team%d.corp%d.example.net", i, i%13) },
			func(p string, k int) string { return withPort(fill(p, k)) }},
		{15, func(i int) string { return fmt.Sprintf("api.*.region%d.example.org", i) },
			func(p string, k int) string { return withPort(fill(p, k)) }},
		{15, func(i int) string {
			if i%2 == 1 {
				return fmt.Sprintf("db%d.internal.example.io:%d", i, 5432+i%7)
			}
			return fmt.Sprintf("*.grp%d.example.io:9443", i)
		}, func(p string, k int) string { return fill(p, k) }},
		{10, func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) },
			func(p string, k int) string { return p + ":" + port() }},
		{10, func(i int) string { return fmt.Sprintf("[fd00::%x]:8443", i+1) },
			func(p string, k int) string { return p }},
	}
	var patterns [][]string
	left := n
	for ki, k := range kinds {
		count := max(1, n*k.share/100)
		if ki == len(kinds)-1 {
			count = max(1, left)
		}
		left -= count
		var ps []string
		for i := range count {
			p := k.make(i)
			if rng.IntN(10) < 3 {
				api[p] = "api-" + p
			} else {
				gateway[p] = "gw-" + p
			}
			ps = append(ps, p)
		}
		patterns = append(patterns, ps)
	}
	const perKind = 1000
	seen := map[string]bool{}
	for ki, k := range kinds {
		for j := 0; j < perKind*2 && len(seen) < (ki+1)*perKind; j++ {
			p := patterns[ki][rng.IntN(len(patterns[ki]))]
			h := k.hosts(p, rng.IntN(1<<20))
			if !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
	}
	for i := range perKind {
		switch i % 4 {
		case 0:
			hosts = append(hosts, fmt.Sprintf("miss%d.nowhere.example.com", i))
		case 1:
			hosts = append(hosts, fmt.Sprintf("a.b.team%d.corp1.example.net", i))
		case 2:
			hosts = append(hosts, fmt.Sprintf("web.x%d.region%d.example.org:8443", i, i))
		case 3:
			hosts = append(hosts, fmt.Sprintf("192.168.%d.%d", i/256, i%256))
		}
	}
	rng.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	return api, gateway, hosts
}

func TestBenchWorkload(t *testing.T) {
	api, gw, hosts := benchWorkload(10)
	r, err := NewResolver(api, gw)
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, h := range hosts {
		if _, ok := r.Resolve(h); ok {
			matched++
		}
	}
	if len(hosts) < 6000 || matched < 5000 || len(api)+len(gw) < 10 {
		t.Fatalf("workload too small: %d hosts, %d matched, %d patterns", len(hosts), matched, len(api)+len(gw))
	}
}

var benchSink string

// benchSettle collects the garbage of a benchmark's setup before it is
// timed: a collection still marking it would run beside the timed loop, on
// one of this machine's two cores, and slow the loop by its write barriers.
func benchSettle() { runtime.GC() }

// benchHeap returns the bytes of live heap, after a collection.
func benchHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func BenchmarkResolve(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			api, gw, hosts := benchWorkload(n)
			before := benchHeap()
			r, err := NewResolver(api, gw)
			if err != nil {
				b.Fatal(err)
			}
			heap := benchHeap() - before
			benchSettle()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v, _ := r.Resolve(hosts[i%len(hosts)])
				benchSink = v
				i++
			}
			b.ReportMetric(float64(heap)/float64(len(api)+len(gw)), "heap-B/pattern")
		})
	}
}

func BenchmarkResolveFixedLookup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			api, gw, hosts := benchWorkload(n)
			benchSettle()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v, _ := fixedLookup(api, gw, hosts[i%len(hosts)])
				benchSink = v
				i++
			}
		})
	}
}

// fixedLookup is the baseline scheme: per level, the host with its port,
// the host, '*.' + the host minus its first label with the port and without,
// then '*'.
func fixedLookup(api, gateway Map, host string) (string, bool) {
	name, port := host, "443"
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		name, port = host[:i], host[i+1:]
	}
	for _, m := range [2]Map{api, gateway} {
		if v, ok := m[name+":"+port]; ok {
			return v, true
		}
		if v, ok := m[name]; ok {
			return v, true
		}
		if i := strings.IndexByte(name, '.'); i >= 0 {
			w := "*." + name[i+1:]
			if v, ok := m[w+":"+port]; ok {
				return v, true
			}
			if v, ok := m[w]; ok {
				return v, true
			}
		}
		if v, ok := m["*"]; ok {
			return v, true
		}
	}
	return "", false
}

func BenchmarkResolveLinear(b *testing.B) {
	for _, n := range benchSizes {
		if n > 10000 {
			continue
		}
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			api, gw, hosts := benchWorkload(n)
			l := newLinear(api, gw)
			benchSettle()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v, _ := l.resolve(hosts[i%len(hosts)])
				benchSink = v
				i++
			}
		})
	}
}

// linear applies the contract by scanning every pattern.
type linear struct{ patterns []linearPattern }

type linearPattern struct {
	value   string
	name    string
	api     bool
	def     bool
	labels  []string
	port    uint16
	ip      bool
	wilds   int
	right   int
	pattern string
}

func newLinear(api, gateway Map) *linear {
	l := &linear{}
	for li, m := range [2]Map{api, gateway} {
		for pat, v := range m {
			p := &hostmatch.Host{}
			p.ParsePattern(pat)
			lp := linearPattern{value: v, name: p.Name(), api: li == 0, def: p.IsDefault(), port: p.Port(), ip: p.IsIP(), pattern: p.String()}
			if !p.IsIP() {
				lp.labels = strings.Split(p.Name(), ".")
			} else {
				lp.labels = []string{p.Name()}
			}
			for _, l := range lp.labels {
				if l == "*" {
					lp.wilds++
					lp.right = 0
				} else {
					lp.right++
				}
			}
			l.patterns = append(l.patterns, lp)
		}
	}
	return l
}

// better reports whether a is preferred to b, both matching one host.
func (a *linearPattern) better(b *linearPattern) bool {
	switch {
	case a.api != b.api:
		return a.api
	case a.def != b.def:
		return !a.def
	case (a.wilds == 0) != (b.wilds == 0):
		return a.wilds == 0
	case a.right != b.right:
		return a.right > b.right
	case (a.port != 0) != (b.port != 0):
		return a.port != 0
	case a.wilds != b.wilds:
		return a.wilds < b.wilds
	}
	return a.pattern < b.pattern
}

func (l *linear) resolve(host string) (string, bool) {
	var h hostmatch.Host
	if h.Parse(host) != "" {
		return "", false
	}
	port := h.Port()
	if port == 0 {
		port = 443
	}
	var best *linearPattern
	for i := range l.patterns {
		p := &l.patterns[i]
		if p.port != 0 && p.port != port || best != nil && !p.better(best) {
			continue
		}
		if p.def || p.wilds == 0 && p.name == h.Name() || p.wilds > 0 && !h.IsIP() && labelsMatch(p.labels, h.Name()) {
			best = p
		}
	}
	if best == nil {
		return "", false
	}
	return best.value, true
}

func labelsMatch(labels []string, name string) bool {
	for i := len(labels) - 1; i >= 0; i-- {
		label := name
		if i > 0 {
			j := strings.LastIndexByte(name, '.')
			if j < 0 {
				return false
			}
			label, name = name[j+1:], name[:j]
		} else if strings.IndexByte(name, '.') >= 0 {
			return false
		}
		if labels[i] != "*" && labels[i] != label {
			return false
		}
	}
	return true
}
