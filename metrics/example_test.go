package metrics_test

import (
	"log"
	"net/http"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A proxy registers one Collector for its Selector and its Server, and
// serves /metrics beside its other routes.
func Example() {
	store := mtls.NewMemoryStore([]byte("a secret from your vault"))
	c := metrics.New()
	sel, err := mtls.New(store, mtls.Policy{}, mtls.WithEventHook(c.SelectorHook()))
	if err != nil {
		log.Fatal(err)
	}
	defer sel.Close()
	c.AddSelector(sel)

	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	_ = mux // http.ListenAndServe(":9090", mux)
	// Output:
}
