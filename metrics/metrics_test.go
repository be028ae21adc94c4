package metrics_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/metrics"
	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A Selector and a Server feed one Collector: counters from their events,
// expiry gauges from their inventories, scraped through a registry.
func TestCollector(t *testing.T) {
	ctx := context.Background()
	ca := mtlstest.MustCA(t, "metrics CA")
	up := mtlstest.NewUpstream(t, ca)
	client := ca.MustIssue(t, mtlstest.Options{CommonName: "client", NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	gone := ca.MustIssue(t, mtlstest.Options{CommonName: "gone"})
	store := mtls.NewMemoryStore([]byte("metrics test"))
	clientID, _ := store.Add(ctx, client.PEM())
	goneID, _ := store.Add(ctx, gone.PEM())

	c := metrics.New()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	sel, err := mtls.New(store, mtls.Policy{
		Certificates:     mtls.Map{up.Host: clientID, "localhost:" + up.Port: goneID},
		PinnedPublicKeys: mtls.Map{"127.0.0.2": "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		RootCAs:          up.Pool,
	}, mtls.WithEventHook(c.SelectorHook()))
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	c.AddSelector(sel)

	get := func(url string) error {
		resp, err := (&http.Client{Transport: sel.RoundTripper()}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(up.URL); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, goneID); err != nil {
		t.Fatal(err)
	}
	if err := get("https://localhost:" + up.Port); err == nil {
		t.Fatal("a deleted certificate did not fail closed")
	}

	srvLeaf := ca.MustIssue(t, mtlstest.Options{CommonName: "srv", DNSNames: []string{"srv.test"}})
	srvID, _ := store.Add(ctx, srvLeaf.PEM())
	srv, err := mtls.NewServer(store, mtls.ServerPolicy{Certificates: mtls.Map{"*": srvID}, AllowedClients: []string{clientID}},
		mtls.WithEventHook(c.ServerHook()))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c.AddServer(srv)
	ts := httptest.NewUnstartedServer(srv.Middleware("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	ts.TLS = srv.TLSConfig()
	ts.Config.ErrorLog = newDiscardLog()
	ts.StartTLS()
	defer ts.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "srv.test"}}
	defer tr.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr}).Get(ts.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a client without a certificate was served")
	}

	for _, tc := range []struct {
		metric, labels string
	}{
		{"mtls_handshakes_total", `outcome="certificate_presented",side="upstream"`},
		{"mtls_failed_closed_total", `reason="not_found",side="upstream"`},
		{"mtls_handshakes_total", `outcome="server_certificate_chosen",side="downstream"`},
		{"mtls_client_refusals_total", `api="",reason="no_certificate"`},
	} {
		if n := count(t, reg, tc.metric, tc.labels); n < 1 {
			t.Errorf("%s{%s} = %v, want at least 1", tc.metric, tc.labels, n)
		}
	}
	got := gather(t, reg, "mtls_certificate_expiry_seconds")
	for _, want := range []string{
		`field="Certificates",id="` + clientID + `",level="gateway",pattern="` + up.Host + `",side="upstream",subject="CN=client,O=mtlstest"`,
		`field="Certificates",id="` + srvID + `",level="",pattern="*",side="downstream"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no expiry gauge with %s in:\n%s", want, got)
		}
	}
	if !strings.Contains(gather(t, reg, "mtls_certificate_unreadable"), `pattern="localhost:`+up.Port+`"`) {
		t.Error("the deleted certificate is not reported unreadable")
	}
	sel.Close() // retires its pool
	if n := count(t, reg, "mtls_pools_retired_total", ""); n < 1 {
		t.Errorf("mtls_pools_retired_total = %v, want at least 1", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("the metrics do not lint: %v %v", problems, err)
	}
}

// count returns the value of the series of metric whose labels contain
// labels.
func count(t *testing.T, reg *prometheus.Registry, metric, labels string) float64 {
	t.Helper()
	for _, line := range strings.Split(gather(t, reg, metric), "\n") {
		if strings.HasPrefix(line, metric) && strings.Contains(line, labels) {
			var v float64
			f := strings.Fields(line)
			if _, err := fmtSscan(f[len(f)-1], &v); err == nil {
				return v
			}
		}
	}
	return 0
}

// gather returns the text exposition of metric.
func gather(t *testing.T, reg *prometheus.Registry, metric string) string {
	t.Helper()
	var b strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			b.WriteString(metric + "{" + strings.Join(labels, ",") + "} " + ftoa(v) + "\n")
		}
	}
	return b.String()
}
