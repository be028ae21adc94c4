package redisstore_test

import (
	"context"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/redisstore"
	"github.com/redis/go-redis/v9"
)

// A node of a fleet of reverse proxies: every node runs this with the same
// Redis, prefix and secret, and presents the client certificate that the
// configuration names to the upstream. An administrator (or any node) adds
// the certificate once; every node sees it, and sees it change or go.
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	store, err := redisstore.New(ctx, rdb, []byte(os.Getenv("MTLS_STORE_SECRET")),
		redisstore.WithPrefix("gateway-prod:"),
		redisstore.WithEventHook(func(e redisstore.Event) {
			log.Printf("certificate store: %v (err=%v, down=%v, ids=%d)", e.Kind, e.Err, e.Down, e.IDs)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// Once, anywhere in the fleet (an admin API, a deployment job):
	//	id, err := store.Add(ctx, pemChainAndKey)
	id := os.Getenv("PAYMENTS_CLIENT_CERT_ID")

	sel, err := mtls.New(store, mtls.Policy{Certificates: mtls.Map{"payments.internal": id}})
	if err != nil {
		log.Fatal(err) // the ID is unknown, or the secret wrong: fail at start
	}
	defer sel.Close()

	target, _ := url.Parse("https://payments.internal")
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = sel.RoundTripper()
	log.Fatal(http.ListenAndServe(":8080", proxy))
}

// An organisation's store, as a multi-tenant gateway keeps one per tenant:
// IDs carry the organisation, and another organisation's are not found.
func ExampleWithOrg() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	acme, err := redisstore.New(ctx, rdb, []byte(os.Getenv("MTLS_STORE_SECRET")), redisstore.WithOrg("acme"))
	if err != nil {
		log.Fatal(err)
	}
	defer acme.Close()
	ids, err := acme.List(ctx) // "acme3f1b...", ...
	if err != nil {
		log.Fatal(err)
	}
	log.Println(ids)
}
