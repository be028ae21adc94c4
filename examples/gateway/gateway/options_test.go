package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
)

// events collects the events of a hook, which runs on other goroutines.
type events struct {
	mu  sync.Mutex
	all []mtls.Event
}

func (e *events) hook(ev mtls.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

// has reports whether an event of kind with certificate id was seen ("":
// any).
func (e *events) has(kind mtls.EventKind, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.all, func(ev mtls.Event) bool {
		return ev.Kind == kind && (id == "" || ev.CertificateID == id)
	})
}

// TestGatewayOptions: the options of Run, which the metrics module's
// gateway uses: hooks on the selectors (every API's included) and on the
// server, the selector and server given to WithRegister (the selector's
// inventory holds the APIs' certificates, those of APIs added by a reload
// too), and an admin handler behind the secret.
func TestGatewayOptions(t *testing.T) {
	s := newScenario(t, nil, nil)
	var selEvents, srvEvents events
	var sel *mtls.Selector
	var srv *mtls.Server
	registered := 0
	probe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "probe ok") })
	s.gw = startGatewayWith(t, nil, []Option{
		WithSelectorHook(selEvents.hook),
		WithServerHook(srvEvents.hook),
		WithRegister(func(se *mtls.Selector, sv *mtls.Server) error {
			sel, srv = se, sv
			registered++
			return nil
		}),
		WithAdminHandler("/probe", probe),
		WithAdminHandler("/probes/", probe),
	}, "-conf", s.conf)
	require.Equal(t, 1, registered)
	require.NotNil(t, sel)
	require.NotNil(t, srv)

	alice := s.client(s.gw, s.leaves["alice"])
	status, body, err := get(alice, s.url("shared.test", "/billing/x"))
	require.NoError(t, err)
	require.Equal(t, 200, status, body)
	u1 := s.leaves["gw-u1"].ID()
	assert.True(t, selEvents.has(mtls.CertificateChosen, u1), "the API selector's handshake reached the selector hook")
	assert.True(t, srvEvents.has(mtls.ServerCertificateChosen, ""), "the server hook")
	status, _, err = get(s.client(s.gw, s.leaves["bob"]), s.url("shared.test", "/billing/x"))
	require.NoError(t, err)
	require.Equal(t, 403, status)
	assert.True(t, srvEvents.has(mtls.ClientRefused, s.leaves["bob"].ID()), "the server hook sees refusals")
	assert.True(t, s.gw.waitLog("refused client="+s.leaves["bob"].ID()), "and the gateway still logs them")

	inventory := func() []string {
		var ids []string
		for _, u := range sel.Inventory(context.Background()) {
			ids = append(ids, u.ID)
		}
		return ids
	}
	assert.Contains(t, inventory(), u1, "billing's upstream certificate, in the gateway selector's inventory")
	u1b := s.leaves["gw-u1b"].ID()
	s.writeAPI("extra", apiDef("extra", "shared.test", "/extra/", s.up1.URL, obj{"upstream_certificates": obj{"127.0.0.1": "../gw-u1b-full.pem"}}))
	status, body, err = get(alice, s.url("shared.test", "/tyk/reload"), "X-Tyk-Authorization", s.secret)
	require.NoError(t, err)
	require.Equal(t, 200, status, body)
	assert.Contains(t, inventory(), u1b, "an API added by a reload")

	for _, tc := range []struct {
		path, secret string
		status       int
		body         string
	}{
		{"/probe", s.secret, 200, "probe ok"},
		{"/probes/x", s.secret, 200, "probe ok"},
		{"/probe", "", 403, "invalid or missing key"},
		{"/probe", "wrong", 403, "invalid or missing key"},
		{"/probe/x", s.secret, 404, "Not Found"}, // not an admin path: no API takes it
	} {
		status, body, err := get(alice, s.url("shared.test", tc.path), "X-Tyk-Authorization", tc.secret)
		require.NoError(t, err)
		assert.Equal(t, tc.status, status, "%s %q: %s", tc.path, tc.secret, body)
		assert.Contains(t, body, tc.body, tc.path)
	}
	assert.True(t, s.gw.waitLog(`admin GET "/probe" status=200`))
}

// TestGatewayOptionErrors: a register function's error stops Run, and so
// does an admin path that cannot be served as documented.
func TestGatewayOptionErrors(t *testing.T) {
	s := newScenario(t, nil, nil)
	boom := errors.New("boom")
	err := Run(context.Background(), []string{"-conf", s.conf}, io.Discard, io.Discard,
		WithRegister(func(*mtls.Selector, *mtls.Server) error { return boom }))
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, 1, ExitCode(err))

	h := http.NotFoundHandler()
	for _, p := range []string{"", "metrics", "/", "/tyk", "/tyk/metrics", "/a/../b", "/a//b", "/a/", "/a", "GET /x", "/{x}"} {
		opts := []Option{WithAdminHandler(p, h)}
		if p == "/a/" || p == "/a" {
			opts = append(opts, WithAdminHandler(p, h)) // twice
		}
		err := Run(context.Background(), []string{"-conf", s.conf}, io.Discard, io.Discard, opts...)
		assert.Error(t, err, "%q", p)
	}
	err = Run(context.Background(), []string{"-conf", s.conf}, io.Discard, io.Discard, WithAdminHandler("/x", nil))
	assert.ErrorContains(t, err, "nil")
}
