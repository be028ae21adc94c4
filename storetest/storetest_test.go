package storetest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/storetest"
)

// The suite must fail for stores that break the contract. Each mutant
// below breaks one rule; TestSuiteCatchesMutants runs the subtest that
// should catch it in a child process (the suite reports through the
// *testing.T it is given, so a failure cannot be observed in-process) and
// checks that it fails.

// mutant wraps a correct store and breaks one rule.
type mutant struct {
	mtls.CertStore
	kind string

	mu    sync.Mutex
	cache map[string]*mtls.Certificate
}

func (m *mutant) Add(ctx context.Context, data []byte) (string, error) {
	if m.kind == "ignores-ctx" {
		ctx = context.Background()
	}
	id, err := m.CertStore.Add(ctx, data)
	if m.kind == "accepts-expired" && errors.Is(err, mtls.ErrExpired) {
		return strings.Repeat("e", 64), nil
	}
	return id, err
}

func (m *mutant) Get(ctx context.Context, id string) (*mtls.Certificate, error) {
	if m.kind == "stale-cache" {
		m.mu.Lock()
		defer m.mu.Unlock()
		if c, ok := m.cache[id]; ok {
			return c, nil
		}
	}
	c, err := m.CertStore.Get(ctx, id)
	if err != nil {
		if m.kind == "plain-not-found" {
			return nil, errors.New("no such thing")
		}
		return nil, err
	}
	cp := *c
	switch m.kind {
	case "drops-key":
		cp.TLS, cp.HasPrivateKey = nil, false
	case "short-chain":
		if cp.TLS != nil {
			t := *cp.TLS
			t.Certificate = t.Certificate[:1]
			cp.TLS = &t
		}
	case "bad-metadata":
		cp.Subject = ""
	case "stale-cache":
		m.cache[id] = &cp
	}
	return &cp, nil
}

func (m *mutant) List(ctx context.Context) ([]string, error) {
	ids, err := m.CertStore.List(ctx)
	if m.kind == "unsorted-list" {
		slices.Reverse(ids)
	}
	return ids, err
}

// asyncNotifier notifies after Add has returned.
type asyncNotifier struct{ *mutant }

func (a asyncNotifier) Notify(fn func(string)) func() {
	return a.CertStore.(mtls.Notifier).Notify(func(id string) {
		go func() { time.Sleep(50 * time.Millisecond); fn(id) }()
	})
}

// TestMutantHelper runs the suite over the mutant named by
// STORETEST_MUTANT; it is a child process of TestSuiteCatchesMutants.
func TestMutantHelper(t *testing.T) {
	kind := os.Getenv("STORETEST_MUTANT")
	if kind == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	storetest.TestStore(t, func(t *testing.T) mtls.CertStore {
		m := &mutant{CertStore: mtls.NewMemoryStore([]byte("secret")), kind: kind, cache: map[string]*mtls.Certificate{}}
		if kind == "async-notify" {
			return asyncNotifier{m}
		}
		return m
	})
}

func TestSuiteCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	for _, tt := range []struct{ kind, subtest string }{
		{"plain-not-found", "UnknownID"},
		{"accepts-expired", "Rejections"},
		{"drops-key", "AttachKey"},
		{"short-chain", "LongerChainKept"},
		{"bad-metadata", "Metadata"},
		{"stale-cache", "CacheNeverOutlivesChange"},
		{"unsorted-list", "AddGetDeleteList"},
		{"ignores-ctx", "Context"},
		{"async-notify", "Notify"},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutantHelper$/^"+tt.subtest+"$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "STORETEST_MUTANT="+tt.kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store that breaks the contract (%s):\n%s", tt.kind, out)
			}
			if want := "--- FAIL: TestMutantHelper/" + tt.subtest; !strings.Contains(string(out), want) {
				t.Fatalf("want %q in the output of the suite:\n%s", want, out)
			}
		})
	}
}

// TestMemoryStoreWithProductionParameters runs the suite over a
// MemoryStore with the real Argon2id parameters (this package cannot lower
// them), as a user of storetest would.
func TestMemoryStoreWithProductionParameters(t *testing.T) {
	if testing.Short() {
		t.Skip("derives keys with 64 MiB of memory")
	}
	storetest.TestStore(t, func(t *testing.T) mtls.CertStore {
		return mtls.NewMemoryStore([]byte("secret"))
	})
}
