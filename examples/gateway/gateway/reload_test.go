package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGatewayReloadUnderLoad: 4 clients (one without keep-alive, so that
// it makes a handshake per request) send requests while the API
// definitions are reloaded 10 times through /tyk/reload, each reload
// adding or removing an API and switching billing's upstream certificate:
// no request fails, and after each reload the next requests see it. A bad
// file then keeps the previous definitions.
func TestGatewayReloadUnderLoad(t *testing.T) {
	s := newScenario(t, nil, nil)
	s.start(t)
	adminC := s.client(s.gw, nil)
	reload := func() (int, string) {
		status, body, err := get(adminC, s.url("shared.test", "/tyk/reload"), "X-Tyk-Authorization", s.secret)
		require.NoError(t, err)
		return status, body
	}

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range []struct {
		cert, path string
		keepAlive  bool
	}{
		{"alice", "/billing/a", true}, {"bob", "/orders/b", true}, {"ops", "/billing/c", false}, {"ops", "/orders/d", true},
	} {
		client := s.client(s.gw, s.leaves[c.cert])
		client.Transport.(*http.Transport).DisableKeepAlives = !c.keepAlive
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(2 * time.Minute) // bounded whatever happens
			for n := 0; time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				status, body, err := get(client, s.url("shared.test", c.path))
				if err == nil && status == http.StatusOK {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				mu.Lock()
				failures = append(failures, strings.TrimSpace(c.path+": "+http.StatusText(status)+" "+body+" "+errString(err)))
				mu.Unlock()
			}
		}()
	}
	// progress waits until the clients have made n more successful requests.
	progress := func(n int64) {
		t.Helper()
		target := ok.Load() + n
		deadline := time.Now().Add(waitFor)
		for ok.Load() < target && failed.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}

	billing := s.apiDefs["billing"]
	extra := apiDef("extra", "shared.test", "/extra/", s.up2.URL, nil)
	probe := s.client(s.gw, s.leaves["alice"])
	for i := range 10 {
		progress(8)
		upCert := "../gw-u1-full.pem"
		wantU1 := s.leaves["gw-u1"].ID()
		if i%2 == 0 {
			upCert, wantU1 = "../gw-u1b-full.pem", s.leaves["gw-u1b"].ID()
			s.writeAPI("extra", extra)
		} else {
			require.NoError(t, os.Remove(filepath.Join(s.apps, "extra.json")))
		}
		billing["upstream_certificates"] = obj{s.up1.Host: upCert}
		s.writeAPI("billing", billing)
		status, body := reload()
		require.Equal(t, 200, status, "reload %d: %s", i+1, body)

		seen := len(s.up1.Seen())
		status, body, err := get(probe, s.url("shared.test", "/billing/probe"))
		require.NoError(t, err)
		require.Equal(t, 200, status, body)
		var ids []string
		for _, c := range s.up1.Seen()[seen:] {
			ids = append(ids, c.ID)
		}
		assert.Contains(t, ids, wantU1, "reload %d: billing's upstream certificate", i+1)
		status, _, err = get(probe, s.url("shared.test", "/extra/x"))
		require.NoError(t, err)
		if i%2 == 0 {
			assert.Equal(t, 200, status, "reload %d added extra", i+1)
		} else {
			assert.Equal(t, 404, status, "reload %d removed extra", i+1)
		}
	}
	progress(8)

	// A bad file: the previous definitions stay.
	s.write(filepath.Join("apps", "bad.json"), []byte(`{"api_id": "bad", "proxy": {"listen_path": "/bad/", "target_url": "ftp://x"}}`))
	status, body := reload()
	assert.Equal(t, 400, status, body)
	assert.Contains(t, body, "bad.json: proxy.target_url: ")
	assert.True(t, s.gw.waitLog("reload failed, keeping the previous API definitions: "+filepath.Join(s.apps, "bad.json")+": proxy.target_url"))
	progress(8)
	status, _, err := get(probe, s.url("shared.test", "/billing/after"))
	require.NoError(t, err)
	assert.Equal(t, 200, status)

	close(stop)
	wg.Wait()
	t.Logf("%d requests through 10 reloads and a refused one, %d failed", ok.Load(), failed.Load())
	assert.Zero(t, failed.Load(), "failed requests:\n%s", strings.Join(failures, "\n"))
	assert.Greater(t, ok.Load(), int64(80))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestGatewayReloadAllOrNothing: a reload applies every API definition or
// none. Each refused reload changes billing's upstream certificate (a
// valid one) and its allowlist, and adds an API, beside one bad value:
// first in orders' upstream policy (ForAPI refuses it), then in orders'
// client allowlist, which only the server's Update checks, after every
// API's selector was built. Both times the reload answers 400 and every
// API keeps what it had: billing presents its old certificate upstream and
// allows alice only, the new API is not served, orders still works. The
// good reload then applies it all, and orders, whose upstream policy did
// not change, keeps its selector and its connection to its upstream.
func TestGatewayReloadAllOrNothing(t *testing.T) {
	s := newScenario(t, nil, nil)
	s.start(t)
	adminC := s.client(s.gw, nil)
	alice, bob := s.client(s.gw, s.leaves["alice"]), s.client(s.gw, s.leaves["bob"])
	u1, u1b := s.leaves["gw-u1"].ID(), s.leaves["gw-u1b"].ID()
	reload := func() (int, string) {
		status, body, err := get(adminC, s.url("shared.test", "/tyk/reload"), "X-Tyk-Authorization", s.secret)
		require.NoError(t, err)
		return status, body
	}
	// billingSees returns the status of c's request to billing and the
	// client certificates up1 saw for it.
	billingSees := func(c *http.Client) (int, []string) {
		seen := len(s.up1.Seen())
		status, body, err := get(c, s.url("shared.test", "/billing/x"))
		require.NoError(t, err, body)
		var ids []string
		for _, c := range s.up1.Seen()[seen:] {
			ids = append(ids, c.ID)
		}
		return status, ids
	}
	status := func(c *http.Client, path string) int {
		st, body, err := get(c, s.url("shared.test", path))
		require.NoError(t, err, body)
		return st
	}
	unchanged := func(when string) {
		t.Helper()
		st, ids := billingSees(alice)
		assert.Equal(t, 200, st, when)
		assert.Equal(t, []string{u1}, ids, "%s: billing's upstream certificate changed", when)
		st, ids = billingSees(bob)
		assert.Equal(t, 403, st, "%s: billing's allowlist changed", when)
		assert.Empty(t, ids)
		assert.Equal(t, 404, status(alice, "/extra/x"), "%s: the new API is served", when)
		assert.Equal(t, 200, status(bob, "/orders/x"), when)
	}
	unchanged("before")
	connsOrders := s.up2.Conns()

	billing := s.apiDefs["billing"]
	billing["upstream_certificates"] = obj{s.up1.Host: "../gw-u1b-full.pem"}
	billing["client_certificates"] = []string{"../alice.pem", "../bob.pem"}
	s.writeAPI("billing", billing)
	s.writeAPI("extra", apiDef("extra", "shared.test", "/extra/", s.up2.URL, nil))
	orders := s.apiDefs["orders"]

	orders["upstream_certificates"] = obj{s.up2.Host: "../none.pem"}
	s.writeAPI("orders", orders)
	st, body := reload()
	assert.Equal(t, 400, st, body)
	assert.Contains(t, body, "orders.json: upstream_certificates")
	unchanged("after a reload with a bad upstream policy")

	delete(orders, "upstream_certificates")
	orders["client_certificates"] = []string{"../bob.pem", "../none.pem"}
	s.writeAPI("orders", orders)
	st, body = reload()
	assert.Equal(t, 400, st, body)
	assert.Contains(t, body, "orders.json: client_certificates")
	unchanged("after a reload with a bad client allowlist")

	orders["client_certificates"] = []string{"../bob.pem"}
	s.writeAPI("orders", orders)
	st, body = reload()
	require.Equal(t, 200, st, body)
	st, ids := billingSees(alice)
	assert.Equal(t, 200, st)
	assert.Equal(t, []string{u1b}, ids, "billing's new upstream certificate")
	st, _ = billingSees(bob)
	assert.Equal(t, 200, st, "billing's new allowlist")
	assert.Equal(t, 200, status(alice, "/extra/x"), "the new API")
	assert.Equal(t, 200, status(bob, "/orders/x"))
	assert.Equal(t, connsOrders, s.up2.Conns()-1, "orders kept its selector: one connection for extra's new selector, none for orders")
}
