//go:build unix

package mtls

// Reliability, part 4: a FileStore on a failing disk (semantics §5).
//
// A read-only directory, a full disk, and write errors injected at the
// steps of a write: each must give an error that names the operation, and
// keep what was stored: earlier entries intact (same ID, metadata, key), the
// entry being written either wholly the old one or wholly the new one, no
// temporary file left or taken for an entry, and the store usable again
// once the disk is.
//
// Tests run as root here (and in CI), where chmod does not stop writes: the
// read-only and full cases then use a small tmpfs mounted for the test
// (remounted read-only for the first), and are skipped, saying why, where
// neither chmod nor mount can do it. The injected cases always run.
//
// The state helpers (crashState, readCrashState, checkCrashDir) are those
// of store_crash_test.go.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// diskTmpfs mounts a tmpfs of size bytes (a "64k" form) for the test and
// returns its path, or "" and why it cannot. It is unmounted at cleanup,
// after the cleanups registered later (the stores) have run.
func diskTmpfs(t *testing.T, size string) (string, string) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return "", "mounting a tmpfs needs root on Linux"
	}
	mnt := filepath.Join(t.TempDir(), "tmpfs")
	require.NoError(t, os.Mkdir(mnt, 0o700))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", mnt).CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("mount -t tmpfs -o size=%s failed: %v: %s", size, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; detaching it", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	return mnt, ""
}

func diskRemount(t *testing.T, mnt, mode string) {
	t.Helper()
	out, err := exec.Command("mount", "-o", "remount,"+mode, mnt).CombinedOutput()
	require.NoError(t, err, "mount -o remount,%s: %s", mode, out)
}

// diskWorld is a store with earlier entries (keys, a certificate without
// its key, a bare public key) and, in a second directory, a store that has
// never held a key (no kdf.json), both opened, and the leaves to add.
type diskWorld struct {
	ls              *crashLeaves
	dir, noKeysDir  string
	s, noKeys       *FileStore
	earlier         map[string]crashState
	noKeysEarlier   map[string]crashState
	newID, attachID string // an ID to add, an ID whose key to attach
	pubID           string // the bare public key's
}

func newDiskWorld(t *testing.T, base string) *diskWorld {
	t.Helper()
	w := &diskWorld{ls: newCrashLeaves(t), dir: filepath.Join(base, "store"), noKeysDir: filepath.Join(base, "nokeys")}
	var err error
	w.s, err = NewFileStore(w.dir, []byte(crashSecret))
	require.NoError(t, err)
	t.Cleanup(func() { w.s.Close() })
	w.noKeys, err = NewFileStore(w.noKeysDir, []byte(crashSecret))
	require.NoError(t, err)
	t.Cleanup(func() { w.noKeys.Close() })
	for _, p := range [][]byte{w.ls.withKey1.PEM(), w.ls.withKey2.PEM(), w.ls.certOnly.CertPEM} {
		add(t, w.s, p)
	}
	w.pubID = add(t, w.s, publicKeyPEM(t, w.ls.pubKey))
	add(t, w.noKeys, w.ls.certOnly.CertPEM)
	w.newID, w.attachID = w.ls.target.ID(), w.ls.certOnly.ID()
	w.earlier = diskStates(t, w.s)
	w.noKeysEarlier = diskStates(t, w.noKeys)
	return w
}

// diskStates reads the state of every entry of s.
func diskStates(t *testing.T, s *FileStore) map[string]crashState {
	t.Helper()
	ctx := context.Background()
	out := map[string]crashState{}
	ids, err := s.List(ctx)
	require.NoError(t, err)
	for _, id := range ids {
		st, err := readCrashState(ctx, s, id)
		require.NoError(t, err)
		out[id] = st
	}
	return out
}

// without returns m without id.
func without(m map[string]crashState, id string) map[string]crashState {
	out := map[string]crashState{}
	for k, v := range m {
		if k != id {
			out[k] = v
		}
	}
	return out
}

// requireKept checks, through the store that failed and through a fresh
// one, that dir holds exactly what it held before: earlier entries intact,
// target as before, no temporary file.
func requireKept(t *testing.T, s *FileStore, dir string, earlier map[string]crashState, target string, before crashState) {
	t.Helper()
	ctx := context.Background()
	got, err := readCrashState(ctx, s, target)
	require.NoError(t, err, "the store that failed")
	require.True(t, before.same(got), "the store that failed shows the entry as %v; before: %v", got, before)
	got = checkCrashDir(t, dir, without(earlier, target), target)
	require.True(t, before.same(got), "a fresh store shows the entry as %v; before: %v", got, before)
	temps, err := filepath.Glob(filepath.Join(dir, tmpPrefix+"*"))
	require.NoError(t, err)
	require.Empty(t, temps, "a failed write left its temporary file")
}

// requireOpError checks that err is a failure of op that wraps want and
// does not pass for "not found".
func requireOpError(t *testing.T, err error, op string, want error) {
	t.Helper()
	require.Error(t, err, "%s succeeded", op)
	require.Contains(t, err.Error(), op, "the error does not name the operation")
	require.ErrorIs(t, err, want, "the error does not carry the cause")
	if op != "delete" {
		require.False(t, errors.Is(err, ErrNotFound), "a failed write reported as not found: %v", err)
	}
	t.Logf("%s: %v", op, err)
}

// exercise runs the writes of the world on a disk that refuses them, with
// cause the error expected, and checks that nothing was lost; then, after
// heal, that the same stores work.
func (w *diskWorld) exercise(t *testing.T, cause error, heal func()) {
	ctx := context.Background()
	full := crashState{present: true, key: true, chain: 2}

	// A new certificate.
	_, err := w.s.Add(ctx, w.ls.target.PEM())
	requireOpError(t, err, "write", cause)
	requireKept(t, w.s, w.dir, w.earlier, w.newID, crashState{})

	// A replacement: the key of a certificate stored without it.
	_, err = w.s.Add(ctx, w.ls.certOnly.PEM())
	requireOpError(t, err, "write", cause)
	requireKept(t, w.s, w.dir, w.earlier, w.attachID, w.earlier[w.attachID])

	// The first key of a store, which must create kdf.json first.
	_, err = w.noKeys.Add(ctx, w.ls.target.PEM())
	requireOpError(t, err, kdfFileName, cause)
	require.NoFileExists(t, filepath.Join(w.noKeysDir, kdfFileName))
	requireKept(t, w.noKeys, w.noKeysDir, w.noKeysEarlier, w.newID, crashState{})

	// Reads still work.
	ids, err := w.s.List(ctx)
	require.NoError(t, err)
	require.Len(t, ids, len(w.earlier))

	// Once the disk is back, the same stores work: nothing failed for good.
	heal()
	id, err := w.s.Add(ctx, w.ls.target.PEM())
	require.NoError(t, err, "Add once the disk is back")
	require.Equal(t, w.newID, id)
	_, err = w.s.Add(ctx, w.ls.certOnly.PEM())
	require.NoError(t, err, "attaching a key once the disk is back")
	_, err = w.noKeys.Add(ctx, w.ls.target.PEM())
	require.NoError(t, err, "the first key of a store once the disk is back")
	attached := w.earlier[w.attachID]
	attached.key, attached.meta.HasPrivateKey = true, true
	after := without(w.earlier, w.attachID)
	after[w.attachID] = attached
	for id, st := range after {
		got, err := readCrashState(ctx, w.s, id)
		require.NoError(t, err)
		require.True(t, st.same(got), "%.12s: %v, want %v", id, got, st)
	}
	require.True(t, full.same(checkCrashDir(t, w.dir, after, w.newID)))
	require.True(t, full.same(checkCrashDir(t, w.noKeysDir, w.noKeysEarlier, w.newID)))
}

// TestDiskReadOnlyDirectory: writes to a read-only directory fail with an
// error naming the operation; Delete fails too and removes nothing; reads
// go on; nothing is lost, and the store works again once it is writable.
func TestDiskReadOnlyDirectory(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	var base string
	var readOnly, writable func()
	var cause error
	if os.Geteuid() != 0 {
		base = t.TempDir()
		cause = fs.ErrPermission
		readOnly = func() {
			for _, d := range []string{"store", "nokeys"} {
				require.NoError(t, os.Chmod(filepath.Join(base, d), 0o500))
			}
		}
		writable = func() {
			for _, d := range []string{"store", "nokeys"} {
				os.Chmod(filepath.Join(base, d), 0o700)
			}
		}
		t.Cleanup(writable)
	} else {
		mnt, why := diskTmpfs(t, "1m")
		if mnt == "" {
			t.Skipf("running as root, where chmod 0500 does not stop writes, and no read-only tmpfs: %s", why)
		}
		base, cause = mnt, syscall.EROFS
		readOnly = func() { diskRemount(t, mnt, "ro") }
		writable = func() { diskRemount(t, mnt, "rw") }
	}
	w := newDiskWorld(t, base)
	readOnly()
	probe := filepath.Join(w.dir, "probe")
	if err := os.WriteFile(probe, nil, 0o600); err == nil {
		os.Remove(probe)
		t.Fatalf("the directory was made read-only, yet a file could be created in it")
	}

	// Delete: refused, and the entry stays, for this store and a fresh one.
	victim := w.ls.withKey1.ID()
	err := w.s.Delete(ctx, victim)
	requireOpError(t, err, "delete", cause)
	require.Contains(t, err.Error(), victim, "the error does not name the entry")
	requireKept(t, w.s, w.dir, w.earlier, victim, w.earlier[victim])

	w.exercise(t, cause, writable)
	require.NoError(t, w.s.Delete(ctx, victim), "Delete once the directory is writable")
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// TestDiskFull: on a full file system (a tmpfs of 64 KiB, filled up),
// writes fail with ENOSPC and an error naming the operation, leave no
// temporary file and lose nothing; Delete still works; once space is freed
// the same stores work.
func TestDiskFull(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	mnt, why := diskTmpfs(t, "64k")
	if mnt == "" {
		t.Skipf("no small file system to fill: %s (the injected write errors of TestDiskWriteErrorInjected still run)", why)
	}
	w := newDiskWorld(t, mnt)

	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	chunk := make([]byte, 4096)
	for i := 0; ; i++ {
		_, err = f.Write(chunk)
		if err != nil {
			break
		}
		require.Less(t, i, 64, "a 64 KiB tmpfs took more than 256 KiB")
	}
	require.ErrorIs(t, err, syscall.ENOSPC, "filling the file system")
	require.NoError(t, f.Close())

	w.exercise(t, syscall.ENOSPC, func() { require.NoError(t, os.Remove(filler)) })

	// Delete needs no space.
	require.NoError(t, os.WriteFile(filler, nil, 0o600))
	f, err = os.OpenFile(filler, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, syscall.ENOSPC)
	f.Close()
	require.NoError(t, w.s.Delete(ctx, w.ls.withKey2.ID()), "Delete on a full disk")
	_, err = w.s.Get(ctx, w.ls.withKey2.ID())
	require.ErrorIs(t, err, ErrNotFound)
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// diskHook sets fileStoreHook for the duration of fn.
func diskHook(t *testing.T, hook func(step string), fn func()) {
	t.Helper()
	fileStoreHook = hook
	defer func() { fileStoreHook = nil }()
	fn()
}

// diskDone runs fn with a deadline: a store that keeps a lock after a
// failed write would hang it.
func diskDone(t *testing.T, what string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	select {
	case err := <-errc:
		require.NoError(t, err, what)
	case <-time.After(waitFor):
		t.Fatalf("%s: not done within %v: the failed write left the store locked", what, waitFor)
	}
}

// TestDiskWriteErrorInjected makes steps of Add and Delete fail for real
// (their temporary file removed before the rename; the directory gone when
// it is synced) and panic (as a crash inside the process would unwind),
// and checks each time the error, that nothing earlier is lost, that the
// entry is whole, and that the store goes on working. It needs no
// privilege and always runs.
func TestDiskWriteErrorInjected(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	full := crashState{present: true, key: true, chain: 2}

	t.Run("rename fails", func(t *testing.T) {
		w := newDiskWorld(t, t.TempDir())
		removeTemps := func(step string) {
			if step == "fsync" { // the temporary file is written and synced
				temps, _ := filepath.Glob(filepath.Join(w.dir, tmpPrefix+"*"))
				for _, tmp := range temps {
					os.Remove(tmp)
				}
			}
		}
		var err error
		diskHook(t, removeTemps, func() { _, err = w.s.Add(ctx, w.ls.target.PEM()) })
		requireOpError(t, err, "write", fs.ErrNotExist)
		require.Contains(t, err.Error(), w.newID)
		requireKept(t, w.s, w.dir, w.earlier, w.newID, crashState{})

		diskHook(t, removeTemps, func() { _, err = w.s.Add(ctx, w.ls.certOnly.PEM()) })
		requireOpError(t, err, "write", fs.ErrNotExist)
		requireKept(t, w.s, w.dir, w.earlier, w.attachID, w.earlier[w.attachID])

		_, err = w.s.Add(ctx, w.ls.target.PEM())
		require.NoError(t, err, "Add after a failed one")
		require.True(t, full.same(checkCrashDir(t, w.dir, w.earlier, w.newID)))
	})

	// The directory vanishes (renamed away, then back) between the rename
	// and the sync of the directory: the write has happened, so the entry
	// is wholly the new one, though Add reports the failure.
	t.Run("directory sync fails", func(t *testing.T) {
		w := newDiskWorld(t, t.TempDir())
		away := w.dir + ".away"
		moveAway := func(after string) func(step string) {
			return func(step string) {
				if step == after {
					require.NoError(t, os.Rename(w.dir, away))
				}
			}
		}
		back := func() { require.NoError(t, os.Rename(away, w.dir)) }

		var err error
		diskHook(t, moveAway("rename"), func() { _, err = w.s.Add(ctx, w.ls.target.PEM()) })
		back()
		requireOpError(t, err, "write", fs.ErrNotExist)
		require.True(t, full.same(checkCrashDir(t, w.dir, w.earlier, w.newID)), "the entry renamed into place")
		got, err := readCrashState(ctx, w.s, w.newID)
		require.NoError(t, err)
		require.True(t, full.same(got), "the store whose Add failed: %v", got)

		victim := w.ls.withKey2.ID()
		diskHook(t, moveAway("remove"), func() { err = w.s.Delete(ctx, victim) })
		back()
		requireOpError(t, err, "delete", fs.ErrNotExist)
		require.Contains(t, err.Error(), victim)
		after := without(w.earlier, victim)
		after[w.newID] = full
		require.False(t, checkCrashDir(t, w.dir, after, victim).present, "the file was removed")
		// The store whose Delete failed may serve the entry from its cache,
		// for no longer than FileStorePollInterval.
		deadline := time.Now().Add(waitFor)
		for {
			_, err := w.s.Get(ctx, victim)
			if errors.Is(err, ErrNotFound) {
				break
			}
			require.NoError(t, err)
			require.False(t, time.Now().After(deadline), "the store still serves a removed entry after %v", waitFor)
			time.Sleep(20 * time.Millisecond)
		}
	})

	// A panic at each step (the hook panics, as a bug or an out-of-memory
	// in the middle of a write would unwind): the store is not left
	// locked, and the directory holds the entry whole.
	for _, op := range []struct {
		name   string
		steps  []crashStep
		do     func(w *diskWorld) error
		target func(w *diskWorld) string
		before func(w *diskWorld) crashState
		after  crashState
	}{
		{"new certificate", crashAddSteps,
			func(w *diskWorld) error { _, err := w.s.Add(ctx, w.ls.target.PEM()); return err },
			func(w *diskWorld) string { return w.newID },
			func(w *diskWorld) crashState { return crashState{} }, full},
		{"attach key", crashAddSteps,
			func(w *diskWorld) error { _, err := w.s.Add(ctx, w.ls.certOnly.PEM()); return err },
			func(w *diskWorld) string { return w.attachID },
			func(w *diskWorld) crashState { return w.earlier[w.attachID] },
			crashState{present: true, key: true, chain: 1}},
		{"delete", crashDeleteSteps,
			func(w *diskWorld) error { return w.s.Delete(ctx, w.ls.withKey1.ID()) },
			func(w *diskWorld) string { return w.ls.withKey1.ID() },
			func(w *diskWorld) crashState { return w.earlier[w.ls.withKey1.ID()] }, crashState{}},
	} {
		for _, step := range op.steps {
			t.Run("panic/"+op.name+"/"+step.String(), func(t *testing.T) {
				w := newDiskWorld(t, t.TempDir())
				target := op.target(w)
				var recovered any
				diskHook(t, func(got string) {
					if got == step.step {
						panic("injected at " + got)
					}
				}, func() {
					defer func() { recovered = recover() }()
					op.do(w)
				})
				require.Equal(t, "injected at "+step.step, recovered, "the hook was not reached")

				want := op.before(w)
				if step.done {
					want = op.after
				}
				got := checkCrashDir(t, w.dir, without(w.earlier, target), target)
				require.True(t, want.same(got), "after a panic at %v the entry is %v; expected %v", step, got, want)

				// The same store goes on: no lock held, writes and reads work.
				other := w.pubID
				diskDone(t, "Delete after the panic", func() error { return w.s.Delete(ctx, other) })
				diskDone(t, "Add after the panic", func() error { _, err := w.s.Add(ctx, publicKeyPEM(t, w.ls.pubKey)); return err })
				diskDone(t, "List after the panic", func() error { _, err := w.s.List(ctx); return err })
				diskDone(t, "the operation again", func() error {
					err := op.do(w)
					if op.name == "delete" && step.done && errors.Is(err, ErrNotFound) {
						return nil // it was done
					}
					return err
				})
				require.True(t, op.after.same(checkCrashDir(t, w.dir, without(w.earlier, target), target)))
			})
		}
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}
