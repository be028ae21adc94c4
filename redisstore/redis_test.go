package redisstore

// Test helpers: a real redis-server per test, started on 127.0.0.1 on a
// free port with its own directory, and stopped at the end; a TCP proxy
// that cuts one node off Redis; nodes (a client and a Store each); event
// recorders. Nothing here mocks Redis.

import (
	"github.com/mtlsgo/mtls/internal/peertest"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestMain lowers the Argon2id parameters for every test: the production
// ones (64 MiB, 3 passes) make each derivation take a noticeable time,
// far more under -race.
func TestMain(m *testing.M) {
	certkit.DefaultParams = certkit.Params{Time: 1, Memory: 64, Threads: 1}
	redis.SetLogger(quietLogger{}) // the outages the tests make on purpose would fill the log
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// waitFor bounds the polling loops of the tests: a deadline, not a timing
// assertion.
const waitFor = 10 * time.Second

// requireRedisServer returns the path of redis-server: see peertest.Require.
func requireRedisServer(t testing.TB) string {
	t.Helper()
	return peertest.Require(t, "redis-server")
}

// redisServer is a redis-server process of one test.
type redisServer struct {
	t     testing.TB
	bin   string
	dir   string
	port  int
	extra []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts a redis-server for t on 127.0.0.1 on a free port, with
// append-only persistence in a directory of its own and no snapshots,
// and stops it when t ends. extra are more arguments.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	r := &redisServer{t: t, bin: requireRedisServer(t), dir: t.TempDir(), extra: extra}
	var err error
	for range 5 { // another process may take the port between the probe and the start
		r.port = freePort(t)
		if err = r.startErr(); err == nil {
			break
		}
	}
	require.NoError(t, err)
	t.Cleanup(r.stop)
	return r
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Addr is the server's host:port.
func (r *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start starts the server again, on the same port and directory.
func (r *redisServer) start() {
	r.t.Helper()
	require.NoError(r.t, r.startErr())
}

func (r *redisServer) startErr() error {
	args := []string{
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--appendonly", "yes", "--dir", r.dir, "--save", "",
		"--daemonize", "no", "--logfile", filepath.Join(r.dir, "redis.log"),
	}
	cmd := exec.Command(r.bin, append(args, r.extra...)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(waitFor)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start: %s", r.logTail())
		default:
		}
		if pong(r.Addr()) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server did not answer PING within %v: %s", waitFor, r.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	return nil
}

// pong reports whether the server at addr answers PING with PONG (not
// LOADING).
func pong(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func (r *redisServer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop stops the server with SIGTERM (a clean shutdown: the append-only
// file is flushed) and waits for it to exit.
func (r *redisServer) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(waitFor):
		cmd.Process.Kill()
		<-done
	}
}

// admin returns a client of the test itself, closed when t ends.
func (r *redisServer) admin(t testing.TB) *redis.Client {
	t.Helper()
	return newClient(t, r.Addr(), "admin")
}

func newClient(t testing.TB, addr, name string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, ClientName: name,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// commandCalls returns the number of calls of each command that INFO
// commandstats reports.
func commandCalls(t testing.TB, c redis.UniversalClient) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		calls, err := strconv.ParseInt(n, 10, 64)
		require.NoError(t, err)
		out[strings.TrimPrefix(name, "cmdstat_")] = calls
	}
	return out
}

// diffCalls returns after - before, command by command, without zeros.
func diffCalls(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// tcpProxy forwards connections from a port of its own to a Redis server,
// and can cut them: a node behind it loses Redis while the others keep it.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	up    bool
	conns map[net.Conn]struct{}
}

func newProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, up: true, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) handle(c net.Conn) {
	p.mu.Lock()
	up := p.up
	p.mu.Unlock()
	if !up {
		c.Close()
		return
	}
	u, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if !p.up {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// cut closes every connection and refuses new ones until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = true
}

// eventLog records a store's events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) hook(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) count(k EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintf(&b, "[%v err=%v down=%v ids=%d] ", e.Kind, e.Err, e.Down, e.IDs)
	}
	return b.String()
}

// node is one proxy of a fleet: its own Redis client and Store.
type node struct {
	name   string
	rdb    *redis.Client
	store  *Store
	events *eventLog
}

const testSecret = "fleet secret: a long passphrase"

// newNode opens a Store on addr as node name, closed when t ends.
func newNode(t testing.TB, addr, name string, opts ...Option) *node {
	t.Helper()
	return newNodeSecret(t, addr, name, []byte(testSecret), opts...)
}

func newNodeSecret(t testing.TB, addr, name string, secret []byte, opts ...Option) *node {
	t.Helper()
	n := &node{name: name, rdb: newClient(t, addr, name), events: &eventLog{}}
	s, err := New(context.Background(), n.rdb, secret, append([]Option{WithEventHook(n.events.hook)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	n.store = s
	return n
}

// eventually polls cond every few milliseconds until it holds, and fails
// t past waitFor. It returns how long it took.
func eventually(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > waitFor {
			t.Fatalf("%s: not within %v", what, waitFor)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// isErr reports whether err wraps target; for polling conditions.
func isErr(err, target error) bool { return errors.Is(err, target) }

// appliedSeq returns the number of the last change s applied from its
// change log.
func (s *Store) appliedSeq() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}
