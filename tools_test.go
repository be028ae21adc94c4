package mtls

import (
	"context"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Explain says which pattern at which level chose a host's certificate and
// pins, and what every step of the precedence offered.
func TestExplain(t *testing.T) {
	ca := newCA(t, "explain")
	store := newStore(t)
	gwID, apiID := add(t, store, clientLeaf(t, ca, "gw").PEM()), add(t, store, clientLeaf(t, ca, "api").PEM())
	pinned := clientLeaf(t, ca, "pinned")
	gw := newSelector(t, store, Policy{
		Certificates:     Map{"*.example.com": gwID, "*": gwID},
		PinnedPublicKeys: Map{"api.example.com:8443": pinFor(pinned.Cert)},
	})
	api := forAPI(t, gw, Policy{Certificates: Map{"api.example.com": apiID}})

	res, err := api.Explain("API.example.com.:8443")
	require.NoError(t, err)
	assert.Equal(t, "api.example.com:8443", res.Host)
	assert.Equal(t, Match{Value: apiID, Pattern: "api.example.com", Level: LevelAPI}, res.Certificate.Match)
	assert.Equal(t, [4]Match{
		{Value: apiID, Pattern: "api.example.com", Level: LevelAPI},
		{},
		{Value: gwID, Pattern: "*.example.com", Level: LevelGateway},
		{Value: gwID, Pattern: "*", Level: LevelGateway},
	}, res.Certificate.Steps)
	assert.Equal(t, apiID, res.Certificate.ID)
	assert.NoError(t, res.Certificate.Err)
	assert.Equal(t, "api.example.com:8443", res.Pins.Pattern)
	assert.Equal(t, []string{pinFor(pinned.Cert)}, res.Pins.Pins)

	res, err = gw.Explain("other.org")
	require.NoError(t, err)
	assert.Equal(t, "*", res.Certificate.Pattern)
	assert.Zero(t, res.Pins.Match, "no pin for other.org")

	del(t, store, apiID)
	res, err = api.Explain("api.example.com")
	require.NoError(t, err)
	assert.ErrorIs(t, res.Certificate.Err, ErrNotFound, "Explain says why the host fails closed")

	_, err = gw.Explain("::1")
	assert.Error(t, err)
}

// Inventory lists every certificate a policy names, with its source and
// expiry; the expiry events report a certificate within the horizon, once.
func TestInventoryAndExpiryEvents(t *testing.T) {
	ca := newCA(t, "inventory")
	soon := issue(t, ca, mtlstest.Options{CommonName: "soon", NotAfter: time.Now().Add(48 * time.Hour)})
	later := issue(t, ca, mtlstest.Options{CommonName: "later", NotAfter: time.Now().Add(90 * 24 * time.Hour)})
	store := newStore(t)
	soonID, laterID := add(t, store, soon.PEM()), add(t, store, later.PEM())
	path := writeFile(t, t.TempDir(), "later.pem", later.PEM())
	var events eventLog
	sel := newSelector(t, store, Policy{
		Certificates:     Map{"a.example.com": soonID, "b.example.com": path},
		PinnedPublicKeys: Map{"a.example.com": laterID + ", " + pinFor(soon.Cert)},
	}, WithEventHook(events.hook), WithExpiryWarning(7*24*time.Hour))

	uses := sel.Inventory(context.Background())
	byPattern := map[string][]CertificateUse{}
	for _, u := range uses {
		require.NoError(t, u.Err, "%+v", u)
		byPattern[u.Field+" "+u.Pattern] = append(byPattern[u.Field+" "+u.Pattern], u)
	}
	require.Len(t, byPattern["Certificates a.example.com"], 1)
	assert.Equal(t, "store", byPattern["Certificates a.example.com"][0].Source)
	assert.Equal(t, soonID, byPattern["Certificates a.example.com"][0].ID)
	assert.Equal(t, "file", byPattern["Certificates b.example.com"][0].Source)
	assert.Equal(t, laterID, byPattern["Certificates b.example.com"][0].ID)
	assert.WithinDuration(t, later.Cert.NotAfter, byPattern["Certificates b.example.com"][0].NotAfter, time.Second)
	pins := byPattern["PinnedPublicKeys a.example.com"]
	require.Len(t, pins, 2)
	assert.ElementsMatch(t, []string{"store", "pin"}, []string{pins[0].Source, pins[1].Source})

	expiring := func() []Event {
		events.mu.Lock()
		defer events.mu.Unlock()
		var out []Event
		for _, e := range events.events {
			if e.Kind == CertificateExpiring || e.Kind == CertificateExpired {
				out = append(out, e)
			}
		}
		return out
	}
	got := expiring()
	require.Len(t, got, 1, "one warning, for the certificate within the horizon:\n%s", events.String())
	assert.Equal(t, soonID, got[0].CertificateID)
	assert.Equal(t, "a.example.com", got[0].Pattern)
	require.NoError(t, sel.Update(Policy{Certificates: Map{"c.example.com": soonID}}))
	assert.Len(t, expiring(), 1, "the same certificate warns once")
}

// Events give their error in a word, for metrics.
func TestEventReasons(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errorf("host h: %w: x", ErrNotFound), "not_found"},
		{errorf("%w: valid until", ErrExpired), "expired"},
		{errorf("%w", ErrNoPrivateKey), "no_private_key"},
		{errorf("%w", ErrDecrypt), "decrypt"},
		{errorf("%w", ErrInvalidValue), "invalid_value"},
		{errorf("%w", ErrPinMismatch), "pin_mismatch"},
		{ErrClosed, "closed"},
		{errorf("disk on fire"), "unreadable"},
		{withReason("not_allowed", errorf("%w: x", ErrClientRefused)), "not_allowed"},
		{errorf("api: %w", withReason("too_deep", errorf("%w", ErrClientRefused))), "too_deep"},
	} {
		assert.Equal(t, tt.want, reasonOf(tt.err), "%v", tt.err)
	}
	ca := newCA(t, "reasons")
	rules := clientRules{cas: ca.Pool}
	v := newSlots(nil)
	other := clientLeaf(t, newCA(t, "other"), "x")
	for chain, want := range map[*mtlstest.Leaf]string{nil: "no_certificate", other: "untrusted", expiredLeaf(t, ca, "old"): "expired"} {
		var c []*x509.Certificate
		if chain != nil {
			c = []*x509.Certificate{chain.Cert}
		}
		assert.Equal(t, want, reasonOf(rules.check(context.Background(), v, c, time.Now(), nil, nil)))
	}
}

// A Trace in a request's context says which certificate went upstream.
func TestTrace(t *testing.T) {
	ca := newCA(t, "trace")
	client := clientLeaf(t, ca, "client")
	store := newStore(t)
	id := add(t, store, client.PEM())
	up := tlsUpstream(t, serverLeaf(t, ca, "up"), ca)
	sel := newSelector(t, store, Policy{Certificates: Map{"127.0.0.1": id}, RootCAs: ca.Pool})
	var tr Trace
	req, err := http.NewRequestWithContext(WithTrace(context.Background(), &tr), http.MethodGet, up.URL, nil)
	require.NoError(t, err)
	resp, err := sel.RoundTripper().RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, Trace{Host: up.Host, CertificateID: id, Pattern: "127.0.0.1", Level: LevelGateway}, tr)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		r, _ := http.NewRequest(http.MethodGet, up.URL, nil)
		sel.entryFor(r)
	})-testing.AllocsPerRun(100, func() { http.NewRequest(http.MethodGet, up.URL, nil) }), "a request without a Trace pays nothing")
}
