package mtls

// Tests of semantics §6 (change and lifecycle) and of the session rule of
// §4: when a host's TLS identity changes, the next request sees it, the old
// pool retires (idle connections close, busy ones after their response),
// nothing in flight fails, and no session of the old identity resumes.

import (
	"context"
	"encoding/pem"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// changeWorld: a trusted upstream that requires client certificates of
// cliCA and reports which it saw; two client certificates in a store.
type changeWorld struct {
	srvCA, cliCA *mtlstest.CA
	server       *mtlstest.Leaf
	one, two     *mtlstest.Leaf
	store        *MemoryStore
	id1, id2     string
	up           *upstream
	otherLeaf    *mtlstest.Leaf
}

func newChangeWorld(t *testing.T, c upstreamConfig) *changeWorld {
	w := &changeWorld{srvCA: newCA(t, "servers"), cliCA: newCA(t, "clients"), store: newStore(t)}
	w.server = serverLeaf(t, w.srvCA, "server")
	w.one, w.two = clientLeaf(t, w.cliCA, "one"), clientLeaf(t, w.cliCA, "two")
	w.id1, w.id2 = add(t, w.store, w.one.PEM()), add(t, w.store, w.two.PEM())
	c.cert = w.server.TLS
	c.verifyClients = w.cliCA.Pool
	w.up = startUpstream(t, c)
	return w
}

// §6: deleting a client certificate: the next request fails closed, the
// idle connection of the old identity closes.
func TestChangeDeletedClientCertificateRetiresPool(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	var log eventLog
	sel := newSelector(t, w.store, Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool}, WithEventHook(log.hook))
	r := mustGet(t, sel.RoundTripper(), w.up.URL)
	require.Equal(t, w.id1, r.certID)

	del(t, w.store, w.id1)
	// Delete has returned: the pool has retired and its idle connection is
	// closing, before any further request.
	require.NotEmpty(t, log.of(PoolRetired, w.up.Host), "events:\n%s", &log)
	w.up.requireClosed(t, r.conn, "after Delete of the client certificate")
	_, err := get(sel.RoundTripper(), w.up.URL)
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, 1, w.up.newConns())
}

// §6: deleting a pinned key: the pool retires; the host, left without a
// usable pin, fails with ErrPinMismatch.
func TestChangeDeletedPinnedKeyRetiresPool(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	keyID := add(t, w.store, publicKeyPEM(t, w.server))
	sel := newSelector(t, w.store, Policy{
		Certificates:     Map{w.up.Host: w.id1},
		PinnedPublicKeys: Map{w.up.Host: keyID},
		RootCAs:          w.srvCA.Pool,
	})
	r := mustGet(t, sel.RoundTripper(), w.up.URL)

	del(t, w.store, keyID)
	w.up.requireClosed(t, r.conn, "after Delete of the pinned key")
	_, err := get(sel.RoundTripper(), w.up.URL)
	require.ErrorIs(t, err, ErrPinMismatch)
	require.EqualValues(t, 1, w.up.requests.Load())
}

// §6: a mapped file replaced on disk (temp file + rename): the next request
// presents the new certificate on a new connection; the old one closes.
func TestChangeReplacedFileIsSeenByTheNextRequest(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	path := writeFile(t, t.TempDir(), "client.pem", w.one.PEM())
	sel := newSelector(t, nil, Policy{Certificates: Map{w.up.Host: path}, RootCAs: w.srvCA.Pool})
	r1 := mustGet(t, sel.RoundTripper(), w.up.URL)
	require.Equal(t, w.id1, r1.certID)

	replaceFile(t, path, w.two.PEM())
	r2 := mustGet(t, sel.RoundTripper(), w.up.URL)
	require.Equal(t, w.id2, r2.certID, "the replaced file was not seen")
	require.NotEqual(t, r1.conn, r2.conn)
	w.up.requireClosed(t, r1.conn, "after the file was replaced")

	// The held tls.Config follows the file too.
	cfg, err := sel.TLSConfigFor(w.up.Host)
	require.NoError(t, err)
	replaceFile(t, path, w.one.PEM())
	d, err := dialGet(w.up.Addr, cfg)
	require.NoError(t, err)
	require.Equal(t, w.id1, d.certID, "a held tls.Config did not follow the file")
}

// §6: Update swaps the policy: the next request uses it, idle connections
// of the old identity close, and a request in flight completes.
func TestChangeUpdateRetiresIdleAndSparesInFlight(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	w := newChangeWorld(t, upstreamConfig{handler: func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			rw.WriteHeader(http.StatusOK)
			rw.Write([]byte("head "))
			rw.(http.Flusher).Flush()
			started <- struct{}{}
			<-release
			rw.Write([]byte("tail"))
			return
		}
		rw.Write([]byte("fast"))
	}})
	// Registered after the upstream's Close, so it runs before it: a
	// failing test must not leave the handler blocked.
	t.Cleanup(unblock)
	p := Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool}
	sel := newSelector(t, w.store, p)
	rt := sel.RoundTripper()

	// A request in flight on one connection of the old identity...
	type result struct {
		r   reply
		err error
	}
	slow := make(chan result, 1)
	go func() {
		r, err := get(rt, w.up.URLPath("/slow"))
		slow <- result{r, err}
	}()
	select {
	case <-started:
	case <-time.After(waitFor):
		t.Fatal("the slow request did not start")
	}
	// ... and an idle one.
	idle := mustGet(t, rt, w.up.URL)
	require.Equal(t, w.id1, idle.certID)
	require.Equal(t, 2, w.up.newConns())

	p.Certificates = Map{w.up.Host: w.id2}
	require.NoError(t, sel.Update(p))
	// Idle connections of the old identity close "before the change is
	// acknowledged"; the server sees it close on its side.
	w.up.requireClosed(t, idle.conn, "idle connection after Update")

	// A new request uses the new certificate while the old one is in flight.
	r := mustGet(t, rt, w.up.URL)
	require.Equal(t, w.id2, r.certID)
	require.Equal(t, 3, w.up.newConns())

	unblock()
	var res result
	select {
	case res = <-slow:
	case <-time.After(waitFor):
		t.Fatal("the request in flight never completed")
	}
	require.NoError(t, res.err, "a request in flight failed because of Update")
	require.Equal(t, http.StatusOK, res.r.status)
	require.Equal(t, "head tail", res.r.body)
	require.Equal(t, w.id1, res.r.certID)
	// Busy connections of a retired pool close after their response.
	w.up.requireClosed(t, res.r.conn, "busy connection after its response, its pool retired")
	require.NotEqual(t, res.r.conn, r.conn)
	require.Equal(t, w.id2, mustGet(t, rt, w.up.URL).certID)
}

// §6: "API-level selectors see their gateway's updates."
func TestChangeAPISelectorsSeeGatewayUpdates(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	gwPolicy := Policy{Certificates: Map{"*": w.id1}, RootCAs: w.srvCA.Pool}
	gw := newSelector(t, w.store, gwPolicy)
	api := forAPI(t, gw, Policy{PinnedPublicKeys: Map{w.up.Host: pinFor(w.server.Cert)}})
	r := mustGet(t, api.RoundTripper(), w.up.URL)
	require.Equal(t, w.id1, r.certID)

	gwPolicy.Certificates = Map{"*": w.id2}
	require.NoError(t, gw.Update(gwPolicy))
	w.up.requireClosed(t, r.conn, "after the gateway's Update, in the API's pool")
	require.Equal(t, w.id2, mustGet(t, api.RoundTripper(), w.up.URL).certID)
	require.Equal(t, w.id2, mustGet(t, gw.RoundTripper(), w.up.URL).certID)

	// The API's own Update leaves the gateway alone.
	require.NoError(t, api.Update(Policy{Certificates: Map{w.up.Host: w.id1}}))
	require.Equal(t, w.id1, mustGet(t, api.RoundTripper(), w.up.URL).certID)
	require.Equal(t, w.id2, mustGet(t, gw.RoundTripper(), w.up.URL).certID)
}

// §4 + §6: a pin of an API that dropped out of the store does not stop the
// API from following its gateway's updates: it is not an error of the
// gateway's Update, and the API keeps working with its remaining pins.
func TestChangeAPIWithADroppedPinStillFollowsGatewayUpdates(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	keyID := add(t, w.store, publicKeyPEM(t, w.server))
	gwPolicy := Policy{Certificates: Map{"*": w.id1}, RootCAs: w.srvCA.Pool}
	gw := newSelector(t, w.store, gwPolicy)
	api := forAPI(t, gw, Policy{PinnedPublicKeys: Map{w.up.Host: keyID + ", " + pinFor(w.server.Cert)}})
	require.Equal(t, w.id1, mustGet(t, api.RoundTripper(), w.up.URL).certID)

	del(t, w.store, keyID) // drops out; the sha256// pin remains and matches
	require.Equal(t, w.id1, mustGet(t, api.RoundTripper(), w.up.URL).certID)

	gwPolicy.Certificates = Map{"*": w.id2}
	require.NoError(t, gw.Update(gwPolicy))
	r, err := get(api.RoundTripper(), w.up.URL)
	require.NoError(t, err, "the API selector broke when its gateway was updated")
	require.Equal(t, w.id2, r.certID, "the API selector did not see its gateway's update")
}

// §4: "a change of certificate or pins never resumes an older session".
// First it is checked that the session does resume without a change.
func TestChangeNoResumptionAcrossIdentityChange(t *testing.T) {
	changes := map[string]func(t *testing.T, w *changeWorld, sel *Selector, p Policy){
		"certificate changed by Update": func(t *testing.T, w *changeWorld, sel *Selector, p Policy) {
			p.Certificates = Map{w.up.Host: w.id2}
			require.NoError(t, sel.Update(p))
		},
		"pins changed by Update": func(t *testing.T, w *changeWorld, sel *Selector, p Policy) {
			p.PinnedPublicKeys = Map{w.up.Host: pinFor(w.server.Cert) + ", " + pinFor(w.one.Cert)}
			require.NoError(t, sel.Update(p))
		},
		"pinned key deleted from the store": func(t *testing.T, w *changeWorld, sel *Selector, p Policy) {
			del(t, w.store, Fingerprint(w.other(t).Cert.RawSubjectPublicKeyInfo))
		},
	}
	for name, change := range changes {
		for _, via := range []string{"RoundTripper", "TLSConfigFor"} {
			t.Run(name+" via "+via, func(t *testing.T) {
				w := newChangeWorld(t, upstreamConfig{})
				otherKey := add(t, w.store, publicKeyPEM(t, w.other(t)))
				p := Policy{
					Certificates:     Map{w.up.Host: w.id1},
					PinnedPublicKeys: Map{w.up.Host: pinFor(w.server.Cert) + ", " + otherKey},
					RootCAs:          w.srvCA.Pool,
				}
				sel := newSelector(t, w.store, p)
				do := resumptionProbe(t, sel, w.up, via)

				first := do()
				require.False(t, first.resumed)
				second := do()
				require.True(t, second.resumed, "the session did not resume before the change: the test proves nothing")
				require.Equal(t, w.id1, second.certID)

				change(t, w, sel, p)
				third := do()
				require.False(t, third.resumed, "a session of the old TLS identity resumed after the change")
				want := w.id1
				if name == "certificate changed by Update" {
					want = w.id2
				}
				require.Equal(t, want, third.certID)
				if via == "RoundTripper" {
					// The new identity resumes its own sessions.
					require.True(t, do().resumed, "the new identity's session did not resume")
				}
			})
		}
	}
	t.Run("mapped file replaced", func(t *testing.T) {
		for _, via := range []string{"RoundTripper", "TLSConfigFor"} {
			t.Run(via, func(t *testing.T) {
				w := newChangeWorld(t, upstreamConfig{})
				path := writeFile(t, t.TempDir(), "client.pem", w.one.PEM())
				sel := newSelector(t, nil, Policy{Certificates: Map{w.up.Host: path}, RootCAs: w.srvCA.Pool})
				do := resumptionProbe(t, sel, w.up, via)
				require.False(t, do().resumed)
				require.True(t, do().resumed, "the session did not resume before the change")
				replaceFile(t, path, w.two.PEM())
				r := do()
				require.False(t, r.resumed, "a session of the old certificate resumed")
				require.Equal(t, w.id2, r.certID, "the upstream saw the old certificate")
			})
		}
	})
}

// other is a trusted key that is not the server's, kept in w for pins.
func (w *changeWorld) other(t *testing.T) *mtlstest.Leaf {
	if w.otherLeaf == nil {
		w.otherLeaf = serverLeaf(t, w.srvCA, "other")
	}
	return w.otherLeaf
}

// resumptionProbe returns a function that makes one new TLS connection to
// u through sel (its RoundTripper, or one tls.Config from TLSConfigFor held
// throughout) and reports whether it resumed.
func resumptionProbe(t *testing.T, sel *Selector, u *upstream, via string) func() reply {
	switch via {
	case "RoundTripper":
		rt := sel.RoundTripper()
		return func() reply {
			t.Helper()
			closeIdle(t, rt) // force a new connection
			r := mustGet(t, rt, u.URL)
			closeIdle(t, rt)
			return r
		}
	case "TLSConfigFor":
		cfg, err := sel.TLSConfigFor(u.Host)
		require.NoError(t, err)
		return func() reply {
			t.Helper()
			r, err := dialGet(u.Addr, cfg)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, r.status)
			return r
		}
	}
	t.Fatalf("unknown probe %q", via)
	return nil
}

// §6: "The request path does no store or file I/O beyond a cheap change
// check": with a notifying store, warm requests, even on new connections,
// read nothing from the store.
func TestChangeNoStoreIOOnAWarmPath(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	keyID := add(t, w.store, publicKeyPEM(t, w.server))
	cs := &countingStore{inner: w.store}
	_, ok := CertStore(cs).(Notifier)
	require.True(t, ok)
	sel := newSelector(t, cs, Policy{
		Certificates:     Map{w.up.Host: w.id1},
		PinnedPublicKeys: Map{w.up.Host: keyID},
		RootCAs:          w.srvCA.Pool,
	})
	rt := sel.RoundTripper()
	mustGet(t, rt, w.up.URL)
	cfg, err := sel.TLSConfigFor(w.up.Host)
	require.NoError(t, err)
	warm := cs.reads()

	for i := range 30 {
		if i%3 == 0 {
			closeIdle(t, rt) // a new connection, a new handshake
		}
		require.Equal(t, w.id1, mustGet(t, rt, w.up.URL).certID)
	}
	for range 3 {
		_, err := dialGet(w.up.Addr, cfg)
		require.NoError(t, err)
	}
	_, err = sel.TransportFor(w.up.Host)
	require.NoError(t, err)
	require.Equal(t, warm, cs.reads(), "warm requests read the store")
	require.Greater(t, w.up.newConns(), 10)

	// A change is read once, then the path is warm again.
	del(t, cs, w.id1)
	add(t, cs, w.one.PEM())
	mustGet(t, rt, w.up.URL)
	warm = cs.reads()
	for range 5 {
		mustGet(t, rt, w.up.URL)
	}
	require.Equal(t, warm, cs.reads(), "warm requests read the store after a change")
}

// §6: "Close releases a selector's pools and subscriptions": idle
// connections close, requests fail, and a closed gateway closes its APIs.
func TestChangeCloseReleasesPools(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	gw, err := New(w.store, Policy{Certificates: Map{"*": w.id1}, RootCAs: w.srvCA.Pool})
	require.NoError(t, err)
	api, err := gw.ForAPI(Policy{})
	require.NoError(t, err)
	r1 := mustGet(t, gw.RoundTripper(), w.up.URL)
	r2 := mustGet(t, api.RoundTripper(), w.up.URL)
	require.NoError(t, gw.Close())
	require.NoError(t, gw.Close(), "Close is idempotent")
	w.up.requireClosed(t, r1.conn, "after Close")
	w.up.requireClosed(t, r2.conn, "after Close of the gateway, in its API's pool")
	before := w.up.requests.Load()
	_, err = get(gw.RoundTripper(), w.up.URL)
	require.Error(t, err)
	_, err = get(api.RoundTripper(), w.up.URL)
	require.Error(t, err)
	require.Error(t, gw.Update(Policy{}))
	require.Equal(t, before, w.up.requests.Load())
	// A store change after Close reaches nothing and breaks nothing.
	del(t, w.store, w.id2)
	_, err = gw.TransportFor(w.up.Host)
	require.Error(t, err)
}

// §6 over HTTP/2: one connection carries many streams; the retired pool's
// connection still closes once its last response is done, and the request
// in flight on it completes.
func TestChangeUpdateOverHTTP2(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	w := newChangeWorld(t, upstreamConfig{http2: true, handler: func(rw http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(rw, "not HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		if r.URL.Path == "/slow" {
			rw.WriteHeader(http.StatusOK)
			rw.Write([]byte("head "))
			rw.(http.Flusher).Flush()
			started <- struct{}{}
			<-release
			rw.Write([]byte("tail"))
			return
		}
		rw.Write([]byte("fast"))
	}})
	t.Cleanup(unblock)
	p := Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool}
	sel := newSelector(t, w.store, p)
	rt := sel.RoundTripper()
	first := mustGet(t, rt, w.up.URL)
	require.Equal(t, w.id1, first.certID)

	type result struct {
		r   reply
		err error
	}
	slow := make(chan result, 1)
	go func() {
		r, err := get(rt, w.up.URLPath("/slow"))
		slow <- result{r, err}
	}()
	select {
	case <-started:
	case <-time.After(waitFor):
		t.Fatal("the slow request did not start")
	}
	require.Equal(t, 1, w.up.newConns(), "HTTP/2 multiplexes one connection")

	p.Certificates = Map{w.up.Host: w.id2}
	require.NoError(t, sel.Update(p))
	r := mustGet(t, rt, w.up.URL)
	require.Equal(t, w.id2, r.certID)
	require.NotEqual(t, first.conn, r.conn)

	unblock()
	var res result
	select {
	case res = <-slow:
	case <-time.After(waitFor):
		t.Fatal("the request in flight never completed")
	}
	require.NoError(t, res.err, "a request in flight failed because of Update")
	require.Equal(t, "head tail", res.r.body)
	require.Equal(t, w.id1, res.r.certID)
	w.up.requireClosed(t, first.conn, "HTTP/2 connection of a retired pool after its last response")
}

// §6: "nothing in flight fails" under load: requests run while Update
// swaps the certificate back and forth; every request succeeds with one of
// the two certificates, and after the last Update requests carry its one.
func TestChangeConcurrentUpdatesFailNoRequest(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	p := Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool}
	sel := newSelector(t, w.store, p)
	rt := sel.RoundTripper()

	const workers, perWorker = 6, 25
	errs := make(chan error, workers*perWorker)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				r, err := get(rt, w.up.URL)
				switch {
				case err != nil:
					errs <- err
				case r.status != http.StatusOK:
					errs <- errorString("status " + http.StatusText(r.status))
				case r.certID != w.id1 && r.certID != w.id2:
					errs <- errorString("unexpected certificate " + r.certID)
				}
			}
		}()
	}
	updates := make(chan error, 1)
	go func() {
		ids := []string{w.id2, w.id1}
		for i := 0; ; i++ {
			select {
			case <-stop:
				updates <- nil
				return
			default:
			}
			q := p
			q.Certificates = Map{w.up.Host: ids[i%2]}
			if err := sel.Update(q); err != nil {
				updates <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	require.NoError(t, <-updates)
	close(errs)
	var failures []string
	for err := range errs {
		failures = append(failures, err.Error())
	}
	require.Empty(t, failures, "requests failed while the policy was updated")

	p.Certificates = Map{w.up.Host: w.id2}
	require.NoError(t, sel.Update(p))
	for range 5 {
		require.Equal(t, w.id2, mustGet(t, rt, w.up.URL).certID)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// §6: another process writing the same FileStore directory is seen within
// the documented bound: a certificate deleted by another FileStore on the
// directory fails the requests of this one, and its pool retires.
func TestChangeFileStoreChangeByAnotherWriter(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	dir := t.TempDir()
	secret := []byte("shared secret")
	mine, err := NewFileStore(dir, secret)
	require.NoError(t, err)
	t.Cleanup(func() { mine.Close() })
	theirs, err := NewFileStore(dir, secret)
	require.NoError(t, err)
	t.Cleanup(func() { theirs.Close() })
	id := add(t, mine, w.one.PEM())

	sel := newSelector(t, mine, Policy{Certificates: Map{w.up.Host: id}, RootCAs: w.srvCA.Pool})
	r := mustGet(t, sel.RoundTripper(), w.up.URL)
	require.Equal(t, w.id1, r.certID)

	del(t, theirs, id)
	// Within FileStorePollInterval (polled up to the test's deadline, not
	// timed), this selector sees it.
	deadline := time.Now().Add(waitFor)
	for {
		_, err = get(sel.RoundTripper(), w.up.URL)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a certificate deleted by another writer was still presented after %v", waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.ErrorIs(t, err, ErrNotFound)
	w.up.requireClosed(t, r.conn, "after another writer deleted the certificate")
}

// §6 option: WithSessionCacheSize(-1) turns resumption off.
func TestChangeSessionCacheOff(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	sel := newSelector(t, w.store, Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool},
		WithSessionCacheSize(-1))
	for _, via := range []string{"RoundTripper", "TLSConfigFor"} {
		do := resumptionProbe(t, sel, w.up, via)
		for range 3 {
			require.False(t, do().resumed, "a session resumed with the session cache off (%s)", via)
		}
	}
	// The default resumes: the probe above could have seen it.
	on := newSelector(t, w.store, Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool})
	do := resumptionProbe(t, on, w.up, "RoundTripper")
	do()
	require.True(t, do().resumed)
}

// §6 rotation, as the Update godoc gives it: Add the new certificate,
// Update, Delete the old one; and a mapping to an ID not yet in the store
// starts working when it is added. No request fails along the way.
func TestChangeRotationThroughTheStore(t *testing.T) {
	w := newChangeWorld(t, upstreamConfig{})
	three := clientLeaf(t, w.cliCA, "three")
	p := Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool}
	sel := newSelector(t, w.store, p)
	rt := sel.RoundTripper()
	require.Equal(t, w.id1, mustGet(t, rt, w.up.URL).certID)

	id3 := add(t, w.store, three.PEM())
	require.Equal(t, w.id1, mustGet(t, rt, w.up.URL).certID)
	p.Certificates = Map{w.up.Host: id3}
	require.NoError(t, sel.Update(p))
	require.Equal(t, id3, mustGet(t, rt, w.up.URL).certID)
	del(t, w.store, w.id1)
	require.Equal(t, id3, mustGet(t, rt, w.up.URL).certID)

	// Mapped before it exists: Update refuses it and the old policy stays;
	// once added, the same Update works.
	four := clientLeaf(t, w.cliCA, "four")
	p.Certificates = Map{w.up.Host: four.ID()}
	err := sel.Update(p)
	require.ErrorIs(t, err, ErrNotFound)
	var pe *PolicyError
	require.ErrorAs(t, err, &pe)
	require.Len(t, pe.Problems, 1)
	require.Equal(t, Problem{Level: LevelGateway, Field: "Certificates", Pattern: w.up.Host, Value: four.ID(), Err: pe.Problems[0].Err}, pe.Problems[0])
	require.Equal(t, id3, mustGet(t, rt, w.up.URL).certID, "the old policy stays")
	add(t, w.store, four.PEM())
	require.NoError(t, sel.Update(p))
	require.Equal(t, four.ID(), mustGet(t, rt, w.up.URL).certID)
}

// §5 + §6: "the same leaf with a longer chain: the longer chain kept", and
// store changes arrive by notification: once the chain that the upstream
// needs is added under the same ID, new connections present it.
func TestChangeLongerChainUnderTheSameIDIsPresented(t *testing.T) {
	srvCA, root := newCA(t, "servers"), newCA(t, "client root")
	inter, err := root.Intermediate("client intermediate")
	require.NoError(t, err)
	leaf := clientLeaf(t, inter, "client")
	require.Contains(t, string(leaf.CertPEM), string(inter.CertPEM), "the leaf's PEM carries its intermediate")
	up := tlsUpstream(t, serverLeaf(t, srvCA, "up"), root) // needs the intermediate

	store := newStore(t)
	leafOnly := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Cert.Raw}), leaf.KeyPEM...)
	id := add(t, store, leafOnly)
	sel := newSelector(t, store, Policy{Certificates: Map{up.Host: id}, RootCAs: srvCA.Pool})
	_, err = get(sel.RoundTripper(), up.URL)
	require.Error(t, err, "the upstream accepted a chain without its intermediate")

	require.Equal(t, id, add(t, store, leaf.PEM()), "same leaf, same ID")
	got, err := store.Get(context.Background(), id)
	require.NoError(t, err)
	require.Len(t, got.TLS.Certificate, 2, "the store kept the longer chain")

	r, err := get(sel.RoundTripper(), up.URL)
	require.NoError(t, err, "the selector still presents the chain it loaded before the store changed")
	require.Equal(t, id, r.certID)
}

// A request whose context is cancelled fails alone: it does not leave a
// failure behind for the requests after it (the store read it interrupted
// is not remembered as the state of the certificate or the pin).
func TestChangeCancelledRequestDoesNotPoisonLaterOnes(t *testing.T) {
	cancelled := func(t *testing.T, sel *Selector, url string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		resp, err := sel.RoundTripper().RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		require.Error(t, err)
	}
	t.Run("client certificate", func(t *testing.T) {
		w := newChangeWorld(t, upstreamConfig{})
		sel := newSelector(t, w.store, Policy{Certificates: Map{w.up.Host: w.id1}, RootCAs: w.srvCA.Pool})
		// Cold: the first load of the certificate.
		cancelled(t, sel, w.up.URL)
		r, err := get(sel.RoundTripper(), w.up.URL)
		require.NoError(t, err, "a cancelled request left its failure to the next one")
		require.Equal(t, w.id1, r.certID)
		// After a change: the reload.
		del(t, w.store, w.id1)
		add(t, w.store, w.one.PEM())
		cancelled(t, sel, w.up.URL)
		r, err = get(sel.RoundTripper(), w.up.URL)
		require.NoError(t, err, "a cancelled request left its failure to the next one")
		require.Equal(t, w.id1, r.certID)
	})
	t.Run("pin", func(t *testing.T) {
		w := newChangeWorld(t, upstreamConfig{})
		keyID := add(t, w.store, publicKeyPEM(t, w.server))
		sel := newSelector(t, w.store, Policy{
			Certificates:     Map{w.up.Host: string(w.one.PEM())},
			PinnedPublicKeys: Map{w.up.Host: keyID},
			RootCAs:          w.srvCA.Pool,
		})
		cancelled(t, sel, w.up.URL)
		_, err := get(sel.RoundTripper(), w.up.URL)
		require.NoError(t, err, "a cancelled request dropped the host's pin for the next one")
		del(t, w.store, keyID)
		add(t, w.store, publicKeyPEM(t, w.server))
		cancelled(t, sel, w.up.URL)
		_, err = get(sel.RoundTripper(), w.up.URL)
		require.NoError(t, err, "a cancelled request dropped the host's pin for the next one")
	})
}
