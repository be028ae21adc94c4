//go:build unix

package mtls

// Reliability, part 4: a store that loses nothing (semantics §5, §6).
//
// A FileStore runs in a child process (this test binary, re-executed into
// TestHelperProcessFileStore) that SIGKILLs itself from fileStoreHook at a
// chosen step of a write: every step of Add's write path (write, fsync,
// rename, dirsync; and those of kdf.json's creation for the first key of a
// store) and of Delete's (remove, dirsync), for a new certificate and for
// replacements (a key attached, a longer chain). The parent then opens the
// directory with a fresh FileStore and checks that nothing was lost: the
// directory is readable, every earlier entry is intact (same ID, same
// metadata, its key decrypts), the interrupted entry is either wholly the
// old one or wholly the new one (or absent), no temporary file is taken for
// an entry, and List agrees with Get. Then it redoes the interrupted
// operation, which must work.
//
// The second test shares one directory between two processes: the child
// writes, the parent sees each change by Get and by a Notify callback,
// never a torn or half-updated entry, within a deadline of a few times
// FileStorePollInterval (polled, not timed).

import (
	"bufio"
	"context"
	"crypto"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// Environment of the helper process.
const (
	crashEnvRole   = "MTLS_TEST_HELPER_ROLE" // "crash" or "writer"
	crashEnvDir    = "MTLS_TEST_HELPER_DIR"
	crashEnvSecret = "MTLS_TEST_HELPER_SECRET"
	crashEnvOp     = "MTLS_TEST_HELPER_OP"   // "add" or "delete"
	crashEnvArg    = "MTLS_TEST_HELPER_ARG"  // a PEM file to add, or an ID to delete
	crashEnvStep   = "MTLS_TEST_HELPER_STEP" // the fileStoreHook step to die at
	crashEnvNth    = "MTLS_TEST_HELPER_NTH"  // ... at its nth call (from 1)
	crashMarker    = "MTLSCHILD "            // prefix of the helper's protocol lines
	crashSecret    = "crash test secret"
)

// TestHelperProcessFileStore is not a test: it is the child process of
// TestFileStoreCrashAtEveryStep and TestFileStoreProcessesShareADirectory,
// and does nothing unless they started it.
func TestHelperProcessFileStore(t *testing.T) {
	role := os.Getenv(crashEnvRole)
	if role == "" {
		t.Skip("helper process: runs only when re-executed by the crash and two-process tests")
	}
	s, err := NewFileStore(os.Getenv(crashEnvDir), []byte(os.Getenv(crashEnvSecret)))
	if err != nil {
		fmt.Printf("%sopen: %v\n", crashMarker, err)
		os.Exit(2)
	}
	switch role {
	case "crash":
		crashChild(s)
	case "writer":
		writerChild(s)
	}
	fmt.Printf("%sunknown role %q\n", crashMarker, role)
	os.Exit(2)
}

// crashChild does one operation and kills itself at the chosen step.
func crashChild(s *FileStore) {
	step := os.Getenv(crashEnvStep)
	nth, _ := strconv.Atoi(os.Getenv(crashEnvNth))
	calls := 0
	fileStoreHook = func(got string) {
		if got != step {
			return
		}
		if calls++; calls == nth {
			fmt.Printf("%skilled at %s #%d\n", crashMarker, got, nth)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute) // the signal is on its way
		}
	}
	ctx := context.Background()
	var err error
	switch arg := os.Getenv(crashEnvArg); os.Getenv(crashEnvOp) {
	case "add":
		var data []byte
		if data, err = os.ReadFile(arg); err == nil {
			_, err = s.Add(ctx, data)
		}
	case "delete":
		err = s.Delete(ctx, arg)
	default:
		err = errors.New("unknown operation")
	}
	fmt.Printf("%scompleted (error: %v): step %s #%d was never reached\n", crashMarker, err, step, nth)
	os.Exit(3)
}

// writerChild serves commands, one a line on stdin: "add <PEM file>",
// "del <id>", "get <id>", "quit"; it answers one line each on stdout.
func writerChild(s *FileStore) {
	ctx := context.Background()
	say := func(format string, args ...any) { fmt.Printf(crashMarker+format+"\n", args...) }
	say("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "add" && len(f) == 2:
			data, err := os.ReadFile(f[1])
			if err == nil {
				var id string
				if id, err = s.Add(ctx, data); err == nil {
					say("ok %s", id)
					continue
				}
			}
			say("error %v", err)
		case f[0] == "del" && len(f) == 2:
			if err := s.Delete(ctx, f[1]); err != nil {
				say("error %v", err)
				continue
			}
			say("ok")
		case f[0] == "get" && len(f) == 2:
			c, err := s.Get(ctx, f[1])
			if err != nil {
				say("error %v", err)
				continue
			}
			say("ok %s key=%v", c.ID, c.TLS != nil)
		case f[0] == "quit":
			s.Close()
			say("bye")
			os.Exit(0)
		default:
			say("error unknown command %q", in.Text())
		}
	}
	os.Exit(0)
}

// crashHelperCmd returns the command that re-executes this test binary as
// the helper process with role and env.
func crashHelperCmd(ctx context.Context, role, dir string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcessFileStore$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvRole+"="+role, crashEnvDir+"="+dir, crashEnvSecret+"="+crashSecret)
	// Under -race, a process that exits waits a second for late reports;
	// the writer exits when told to, and need not.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// --- what a store holds ------------------------------------------------------

// crashLeaves are the certificates of the crash tests: earlier entries
// (two with keys, one without, a bare public key) and the target, issued
// by an intermediate so that it has a chain of two.
type crashLeaves struct {
	withKey1, withKey2, certOnly, pubKey *mtlstest.Leaf
	target                               *mtlstest.Leaf
	targetLeafOnly                       []byte // the target's leaf and key, without its intermediate
}

func newCrashLeaves(t *testing.T) *crashLeaves {
	root := newCA(t, "crash root")
	inter, err := root.Intermediate("crash intermediate")
	require.NoError(t, err)
	l := &crashLeaves{
		withKey1: issue(t, root, mtlstest.Options{CommonName: "earlier p256"}),
		withKey2: issue(t, root, mtlstest.Options{CommonName: "earlier ed25519", Key: mtlstest.Ed25519}),
		certOnly: issue(t, root, mtlstest.Options{CommonName: "earlier certificate only"}),
		pubKey:   issue(t, root, mtlstest.Options{CommonName: "earlier public key"}),
		target:   issue(t, inter, mtlstest.Options{CommonName: "target"}),
	}
	l.targetLeafOnly = append(crashPEM("CERTIFICATE", l.target.Cert.Raw), l.target.KeyPEM...)
	return l
}

func crashPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// crashState is what a store holds under one ID.
type crashState struct {
	present bool
	key     bool // its private key, which decrypted and matches the leaf
	chain   int  // certificates in the chain
	meta    Metadata
}

func (s crashState) String() string {
	if !s.present {
		return "absent"
	}
	return fmt.Sprintf("present (key: %v, chain of %d)", s.key, s.chain)
}

// same compares everything but the metadata's pointer-y details.
func (s crashState) same(o crashState) bool {
	return s.present == o.present && s.key == o.key && s.chain == o.chain
}

// readCrashState reads id from s (a fresh store: nothing cached) and from
// its file. Absent is ErrNotFound with no file; any other error, a file
// that does not decode, or a key that does not decrypt is an error.
func readCrashState(ctx context.Context, s *FileStore, id string) (crashState, error) {
	path := filepath.Join(s.Dir(), entryName(id))
	data, ferr := os.ReadFile(path)
	c, err := s.Get(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) && errors.Is(ferr, os.ErrNotExist) {
			return crashState{}, nil
		}
		return crashState{}, fmt.Errorf("Get %.12s: %w (file: %v)", id, err, ferr)
	}
	if ferr != nil {
		return crashState{}, fmt.Errorf("Get %.12s works but its file does not read: %v", id, ferr)
	}
	d, err := decodeEntry(id, data)
	if err != nil {
		return crashState{}, fmt.Errorf("the file of %.12s does not decode: %w", id, err)
	}
	if c.ID != id || c.Fingerprint != id {
		return crashState{}, fmt.Errorf("Get %.12s returned ID %.12s", id, c.ID)
	}
	st := crashState{present: true, chain: len(d.Chain), meta: c.Metadata}
	if c.Leaf == nil {
		st.chain = 0 // a bare public key
	}
	if c.HasPrivateKey != (d.Sealed != nil) {
		return crashState{}, fmt.Errorf("%.12s: HasPrivateKey %v but sealed key in the file: %v", id, c.HasPrivateKey, d.Sealed != nil)
	}
	if c.HasPrivateKey {
		if c.TLS == nil {
			return crashState{}, fmt.Errorf("%.12s has a private key but no TLS certificate", id)
		}
		signer, ok := c.TLS.PrivateKey.(crypto.Signer)
		if !ok || !certkit.KeyMatches(signer, c.Leaf.PublicKey) {
			return crashState{}, fmt.Errorf("%.12s: the decrypted key does not match the leaf", id)
		}
		if len(c.TLS.Certificate) != len(d.Chain) {
			return crashState{}, fmt.Errorf("%.12s: TLS chain of %d, file chain of %d", id, len(c.TLS.Certificate), len(d.Chain))
		}
		st.key = true
	}
	return st, nil
}

// crashGetState is what Get of id on s gives, with no look at the file:
// for a store that another process writes, whose file may be newer than
// what the store is allowed to show yet. Absent is ErrNotFound; any other
// error, or a key that does not decrypt, is an error.
func crashGetState(ctx context.Context, s *FileStore, id string) (crashState, error) {
	c, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return crashState{}, nil
	}
	if err != nil {
		return crashState{}, fmt.Errorf("Get %.12s: %w", id, err)
	}
	if c.ID != id {
		return crashState{}, fmt.Errorf("Get %.12s returned ID %.12s", id, c.ID)
	}
	st := crashState{present: true, meta: c.Metadata}
	switch {
	case c.HasPrivateKey:
		signer, ok := c.TLS.PrivateKey.(crypto.Signer)
		if c.TLS == nil || !ok || !certkit.KeyMatches(signer, c.Leaf.PublicKey) {
			return crashState{}, fmt.Errorf("%.12s: no key, or a key that does not match the leaf", id)
		}
		st.key, st.chain = true, len(c.TLS.Certificate)
	case c.Leaf != nil:
		// The chain of an entry without a key is not in Certificate:
		// take it from the store's cache, which Get has just filled.
		s.mu.RLock()
		e := s.entries[id]
		s.mu.RUnlock()
		if e == nil || e.data == nil {
			return crashState{}, fmt.Errorf("%.12s: Get found it, but it is not in the store's cache", id)
		}
		st.chain = len(e.data.Chain)
	}
	return st, nil
}

// checkCrashDir opens dir with a fresh FileStore and checks it against
// earlier, the states its entries must have, and target, the ID whose
// state it returns. Every file is kdf.json, a temporary file or a valid
// entry; List is exactly the IDs that Get finds.
func checkCrashDir(t *testing.T, dir string, earlier map[string]crashState, target string) crashState {
	t.Helper()
	ctx := context.Background()
	s, err := NewFileStore(dir, []byte(crashSecret))
	require.NoError(t, err, "the directory cannot be opened")
	defer s.Close()

	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var temps []string
	for _, de := range des {
		name := de.Name()
		switch id, isEntry := entryID(name); {
		case name == kdfFileName:
		case strings.HasPrefix(name, tmpPrefix):
			temps = append(temps, name)
		case isEntry:
			data, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			_, err = decodeEntry(id, data)
			require.NoError(t, err, "a half-written entry file %s", name)
		default:
			t.Errorf("unexpected file %s in the store's directory", name)
		}
	}

	ids, err := s.List(ctx)
	require.NoError(t, err, "List")
	for _, id := range ids {
		_, known := earlier[id]
		require.True(t, known || id == target, "List gives %.12s, which was never stored (temporary files: %v)", id, temps)
	}
	for id, want := range earlier {
		got, err := readCrashState(ctx, s, id)
		require.NoError(t, err, "an earlier entry")
		require.True(t, want.same(got), "earlier entry %.12s: %v, was %v", id, got, want)
		if want.meta.ID != "" { // recorded, not made up by the test
			require.Equal(t, want.meta, got.meta, "earlier entry %.12s: metadata changed", id)
		}
		require.Contains(t, ids, id, "List leaves out an earlier entry")
	}
	got, err := readCrashState(ctx, s, target)
	require.NoError(t, err, "the interrupted entry")
	require.Equal(t, got.present, slices.Contains(ids, target), "List and Get disagree about the interrupted entry (%v)", got)
	if len(temps) > 0 {
		t.Logf("temporary files left (ignored, as they must be): %v", temps)
	}
	return got
}

// --- the crash test ------------------------------------------------------------

type crashStep struct {
	step string
	nth  int  // which call of the hook with step
	done bool // whether the operation has taken effect at that point
}

func (s crashStep) String() string {
	if s.nth > 1 {
		return fmt.Sprintf("%s#%d", s.step, s.nth)
	}
	return s.step
}

// The steps of Add's write path, and those of Delete.
var (
	crashAddSteps    = []crashStep{{"write", 1, false}, {"fsync", 1, false}, {"rename", 1, true}, {"dirsync", 1, true}}
	crashDeleteSteps = []crashStep{{"remove", 1, true}, {"dirsync", 1, true}}
	// The first key of a store creates kdf.json first (a temporary file,
	// written and synced, then hard-linked), then the entry.
	crashFirstKeySteps = []crashStep{{"write", 1, false}, {"fsync", 1, false},
		{"write", 2, false}, {"fsync", 2, false}, {"rename", 1, true}, {"dirsync", 1, true}}
)

// TestFileStoreCrashAtEveryStep kills a writing process at every step of
// every kind of write and checks what it leaves.
func TestFileStoreCrashAtEveryStep(t *testing.T) {
	start := time.Now()
	ls := newCrashLeaves(t)
	pems := t.TempDir()
	targetFull := writeFile(t, pems, "target-full.pem", ls.target.PEM())
	tid := ls.target.ID()

	type crashCase struct {
		name         string
		noKeys       bool   // the earlier entries hold no key, and there is no kdf.json
		before       []byte // the target as stored before the operation, if any
		op, arg      string
		steps        []crashStep
		old, new     crashState
		redoNotFound bool // redoing the operation may find nothing to do
	}
	absent := crashState{}
	full := crashState{present: true, key: true, chain: 2}
	cases := []crashCase{
		{name: "new certificate", op: "add", arg: targetFull, steps: crashAddSteps, old: absent, new: full},
		{name: "attach key", before: ls.target.CertPEM, op: "add", arg: targetFull, steps: crashAddSteps,
			old: crashState{present: true, chain: 2}, new: full},
		{name: "longer chain", before: ls.targetLeafOnly, op: "add", arg: targetFull, steps: crashAddSteps,
			old: crashState{present: true, key: true, chain: 1}, new: full},
		{name: "delete", before: ls.target.PEM(), op: "delete", arg: tid, steps: crashDeleteSteps,
			old: full, new: absent, redoNotFound: true},
		{name: "first key of the store", noKeys: true, op: "add", arg: targetFull, steps: crashFirstKeySteps,
			old: absent, new: full},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, step := range c.steps {
				t.Run(step.String(), func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					dir := filepath.Join(t.TempDir(), "store")

					// The store before the operation.
					s, err := NewFileStore(dir, []byte(crashSecret))
					require.NoError(t, err)
					earlier := map[string]crashState{}
					stored := [][]byte{ls.certOnly.CertPEM, publicKeyPEM(t, ls.pubKey)}
					if !c.noKeys {
						stored = append(stored, ls.withKey1.PEM(), ls.withKey2.PEM())
					}
					for _, p := range stored {
						add(t, s, p)
					}
					if c.before != nil {
						add(t, s, c.before)
					}
					for _, id := range crashMust(s.List(ctx)) {
						if id != tid {
							earlier[id] = crashMust(readCrashState(ctx, s, id))
						}
					}
					require.Len(t, earlier, len(stored))
					require.True(t, c.old.same(crashMust(readCrashState(ctx, s, tid))), "the target before the operation")
					require.NoError(t, s.Close())
					if c.noKeys {
						require.NoFileExists(t, filepath.Join(dir, kdfFileName))
					}

					// The child dies at the step.
					cctx, cancel := context.WithTimeout(ctx, 2*waitFor)
					defer cancel()
					cmd := crashHelperCmd(cctx, "crash", dir,
						crashEnvOp+"="+c.op, crashEnvArg+"="+c.arg,
						crashEnvStep+"="+step.step, crashEnvNth+"="+strconv.Itoa(step.nth))
					out, err := cmd.CombinedOutput()
					var ee *exec.ExitError
					require.ErrorAs(t, err, &ee, "the child was not killed; its output:\n%s", out)
					ws, ok := ee.Sys().(syscall.WaitStatus)
					require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL,
						"the child did not die of SIGKILL (%v); its output:\n%s", err, out)
					require.Contains(t, string(out), crashMarker+"killed at "+step.step)

					// A fresh store finds everything earlier intact, and the
					// target wholly old or wholly new: which one, the step
					// says (SIGKILL loses nothing the kernel was given).
					got := checkCrashDir(t, dir, earlier, tid)
					want := c.old
					if step.done {
						want = c.new
					}
					require.True(t, got.same(c.old) || got.same(c.new), "the interrupted entry is %v: neither %v nor %v", got, c.old, c.new)
					require.True(t, got.same(want), "killed at %v, the entry is %v; expected %v", step, got, want)

					// The store still works: the operation done again takes
					// effect, and keys written before and after decrypt.
					s2, err := NewFileStore(dir, []byte(crashSecret))
					require.NoError(t, err)
					defer s2.Close()
					switch c.op {
					case "add":
						_, err = s2.Add(ctx, ls.target.PEM())
					case "delete":
						err = s2.Delete(ctx, tid)
					}
					if c.redoNotFound && got.same(c.new) {
						require.ErrorIs(t, err, ErrNotFound, "done again")
					} else {
						require.NoError(t, err, "done again")
					}
					require.NoError(t, s2.Close())
					require.True(t, c.new.same(checkCrashDir(t, dir, earlier, tid)), "after the operation was done again")
				})
			}
		})
	}
	n := 0
	for _, c := range cases {
		n += len(c.steps)
	}
	t.Cleanup(func() { t.Logf("%d crashes checked in %v", n, time.Since(start).Round(time.Millisecond)) })
}

// crashMust is for values the test has no reason to doubt.
func crashMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// --- two processes -------------------------------------------------------------

// crashWriter drives the writer child.
type crashWriter struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	mu    sync.Mutex
	other []string // output that is not protocol
}

func startCrashWriter(t *testing.T, dir string) *crashWriter {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := crashHelperCmd(ctx, "writer", dir)
	w := &crashWriter{t: t, cmd: cmd, lines: make(chan string, 16)}
	var err error
	w.in, err = cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), crashMarker); ok {
				w.lines <- line
			} else {
				w.mu.Lock()
				w.other = append(w.other, sc.Text())
				w.mu.Unlock()
			}
		}
		close(w.lines)
	}()
	t.Cleanup(func() {
		fmt.Fprintln(w.in, "quit")
		w.in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Errorf("the writer process did not quit")
		}
		cancel()
	})
	require.Equal(t, "ready", w.reply(), "the writer process did not start")
	return w
}

func (w *crashWriter) reply() string {
	w.t.Helper()
	select {
	case line, ok := <-w.lines:
		if !ok {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.t.Fatalf("the writer process ended; its other output:\n%s", strings.Join(w.other, "\n"))
		}
		return line
	case <-time.After(2 * waitFor):
		w.t.Fatalf("no answer from the writer process within %v", 2*waitFor)
	}
	return ""
}

// do sends a command and requires an "ok" answer, which it returns.
func (w *crashWriter) do(format string, args ...any) string {
	w.t.Helper()
	cmd := fmt.Sprintf(format, args...)
	_, err := fmt.Fprintln(w.in, cmd)
	require.NoError(w.t, err)
	r := w.reply()
	require.True(w.t, strings.HasPrefix(r, "ok"), "writer process: %s: %s", cmd, r)
	return r
}

// TestFileStoreProcessesShareADirectory: a child process and this one use
// FileStores on one directory. Both add their first private key at once
// (racing to create kdf.json) and read each other's keys; then the child
// adds, replaces and deletes entries, and this process sees each change by
// a Notify callback and by Get, on a store with a subscriber and on one
// without, never anything but the state before or the state after.
func TestFileStoreProcessesShareADirectory(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "shared")
	pems := t.TempDir()
	root := newCA(t, "shared root")
	inter, err := root.Intermediate("shared intermediate")
	require.NoError(t, err)
	leaf := func(name string) *mtlstest.Leaf { return issue(t, inter, mtlstest.Options{CommonName: name}) }
	file := func(name string, data []byte) string { return writeFile(t, pems, name+".pem", data) }

	// Both processes add their first key at once.
	parent, err := NewFileStore(dir, []byte(crashSecret))
	require.NoError(t, err)
	t.Cleanup(func() { parent.Close() })
	child := startCrashWriter(t, dir)
	mine, theirs := leaf("parent's"), leaf("child's")
	fmt.Fprintln(child.in, "add "+file("theirs", theirs.PEM()))
	_, err = parent.Add(ctx, mine.PEM())
	require.NoError(t, err, "Add racing another process's first key")
	require.Equal(t, "ok "+theirs.ID(), child.reply(), "the child's Add racing this one")
	c, err := parent.Get(ctx, theirs.ID())
	require.NoError(t, err, "the key written by the other process")
	require.NotNil(t, c.TLS)
	require.Equal(t, "ok "+mine.ID()+" key=true", child.do("get %s", mine.ID()))

	// A watcher with a subscriber, and a reader without.
	type note struct {
		id string
		at time.Time
	}
	var mu sync.Mutex
	var notes []note
	stop := parent.Notify(func(id string) {
		mu.Lock()
		notes = append(notes, note{id, time.Now()})
		mu.Unlock()
	})
	defer stop()
	notified := func(id string, since time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range notes {
			if n.id == id && !n.at.Before(since) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(waitFor)
	for !parent.polling.Load() { // the poller's baseline is taken
		require.False(t, time.Now().After(deadline), "the poller never started")
		time.Sleep(5 * time.Millisecond)
	}
	reader, err := NewFileStore(dir, []byte(crashSecret))
	require.NoError(t, err)
	t.Cleanup(func() { reader.Close() })

	bound := FileStorePollInterval
	limit := 5 * bound // a few times the documented bound: a deadline, not a measure
	x, y, z := leaf("x"), leaf("y"), leaf("z")
	zLeafOnly := append(crashPEM("CERTIFICATE", z.Cert.Raw), z.KeyPEM...)
	full := crashState{present: true, key: true, chain: 2}
	steps := []struct {
		name      string
		id        string
		before    crashState
		after     crashState
		prepare   string // a command run before, whose change is not watched
		command   string
		warmCache bool // the reader holds the entry before the change
	}{
		{name: "new certificate", id: x.ID(), after: full, command: "add " + file("x", x.PEM())},
		{name: "attach key", id: y.ID(), prepare: "add " + file("y-cert", y.CertPEM),
			before: crashState{present: true, chain: 2}, after: full, command: "add " + file("y", y.PEM()), warmCache: true},
		{name: "longer chain", id: z.ID(), prepare: "add " + file("z-leaf", zLeafOnly),
			before: crashState{present: true, key: true, chain: 1}, after: full, command: "add " + file("z", z.PEM()), warmCache: true},
		{name: "delete", id: x.ID(), before: full, command: "del " + x.ID(), warmCache: true},
	}
	waitNotified := func(id string, since time.Time, what string) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !notified(id, since) {
			require.False(t, time.Now().After(deadline), "%s: no Notify callback for %.12s within %v", what, id, limit)
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, st := range steps {
		if st.prepare != "" {
			at := time.Now()
			child.do("%s", st.prepare)
			// Let the watcher take it in first, so that what follows is
			// a change of an entry it holds and a callback of its own.
			waitNotified(st.id, at, "before "+st.name)
			waitCrashState(t, parent, st.id, st.before, st.before, limit, "before "+st.name)
		}
		if st.warmCache {
			waitCrashState(t, reader, st.id, st.before, st.before, limit, "reader, before "+st.name)
		}
		at := time.Now()
		child.do("%s", st.command)
		// Each poll's Get must give the state before or the state after.
		took := waitCrashState(t, parent, st.id, st.before, st.after, limit, st.name)
		waitNotified(st.id, at, st.name)
		tookReader := waitCrashState(t, reader, st.id, st.before, st.after, limit, "reader, "+st.name)
		t.Logf("%s: seen after %v by Get on the watching store, %v on the reader (documented bound %v)",
			st.name, took.Round(time.Millisecond), tookReader.Round(time.Millisecond), bound)
	}

	// A burst of writes: every one arrives, List agrees.
	var burst []string
	for i := range 5 {
		l := leaf(fmt.Sprintf("burst %d", i))
		child.do("add %s", file(fmt.Sprintf("burst%d", i), l.PEM()))
		burst = append(burst, l.ID())
	}
	want := append([]string{mine.ID(), theirs.ID(), y.ID(), z.ID()}, burst...)
	slices.Sort(want)
	deadline = time.Now().Add(limit)
	for {
		ids, err := parent.List(ctx)
		require.NoError(t, err)
		if slices.Equal(ids, want) {
			break
		}
		require.False(t, time.Now().After(deadline), "List after a burst of writes by the other process: %d IDs, want %d", len(ids), len(want))
		time.Sleep(10 * time.Millisecond)
	}
	for _, id := range burst {
		waitNotified(id, start, "burst")
		got, err := crashGetState(ctx, parent, id)
		require.NoError(t, err)
		require.True(t, full.same(got), "%.12s: %v", id, got)
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// waitCrashState polls s's Get of id until it shows after; every result
// must be before or after, and nothing else (no error but ErrNotFound for
// an absent entry, no half-written entry). It returns how long it took.
func waitCrashState(t *testing.T, s *FileStore, id string, before, after crashState, limit time.Duration, what string) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	for {
		got, err := crashGetState(ctx, s, id)
		require.NoError(t, err, "%s: a torn or corrupt entry", what)
		require.True(t, got.same(before) || got.same(after), "%s: %.12s is %v, neither %v nor %v", what, id, got, before, after)
		if got.same(after) {
			return time.Since(start)
		}
		require.False(t, time.Since(start) > limit, "%s: %.12s still %v after %v", what, id, got, limit)
		time.Sleep(5 * time.Millisecond)
	}
}
