package mtls_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

func ExampleNewFileStore() {
	dir, err := os.MkdirTemp("", "mtls-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The secret protects the private keys at rest; keep it out of the
	// directory (an environment variable, a secret manager).
	store, err := mtls.NewFileStore(filepath.Join(dir, "certs"), []byte("a long passphrase"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ca, err := mtlstest.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := ca.Issue(mtlstest.Options{CommonName: "client.example", DNSNames: []string{"client.example"}})
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	id, err := store.Add(ctx, leaf.PEM()) // certificate chain and private key
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the ID is the SHA-256 of the leaf:", id == leaf.ID())

	meta, err := store.Metadata(ctx, id) // decrypts nothing
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("subject:", meta.Subject)
	fmt.Println("DNS names:", meta.DNSNames)
	fmt.Println("has private key:", meta.HasPrivateKey)

	cert, err := store.Get(ctx, id) // decrypts the key, once
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready for tls.Config:", cert.TLS != nil && cert.TLS.Leaf != nil)

	// Another store on the same directory, as another process would open
	// it, reads the same entries.
	other, err := mtls.NewFileStore(filepath.Join(dir, "certs"), []byte("a long passphrase"))
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	ids, err := other.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("entries seen by the other store:", len(ids))
	// Output:
	// the ID is the SHA-256 of the leaf: true
	// subject: CN=client.example,O=mtlstest
	// DNS names: [client.example]
	// has private key: true
	// ready for tls.Config: true
	// entries seen by the other store: 1
}

func ExampleNewMemoryStore() {
	store := mtls.NewMemoryStore([]byte("a long passphrase"))
	ca, err := mtlstest.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := ca.Issue(mtlstest.Options{CommonName: "client.example"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Subscribers hear of every change before Add or Delete returns.
	stop := store.Notify(func(id string) {
		_, err := store.Get(ctx, id)
		fmt.Println("changed; still there:", err == nil)
	})
	defer stop()

	id, err := store.Add(ctx, leaf.CertPEM) // the certificate alone
	if err != nil {
		log.Fatal(err)
	}
	cert, _ := store.Get(ctx, id)
	fmt.Println("key:", cert.HasPrivateKey)

	if _, err := store.Add(ctx, leaf.PEM()); err != nil { // the key is attached
		log.Fatal(err)
	}
	cert, _ = store.Get(ctx, id)
	fmt.Println("key:", cert.HasPrivateKey)

	if err := store.Delete(ctx, id); err != nil {
		log.Fatal(err)
	}
	_, err = store.Get(ctx, id)
	fmt.Println("not found:", errors.Is(err, mtls.ErrNotFound))
	// Output:
	// changed; still there: true
	// key: false
	// changed; still there: true
	// key: true
	// changed; still there: false
	// not found: true
}
