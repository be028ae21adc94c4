// Command mkcerts makes the throw-away certificates of the gateway's demo
// in examples/gateway/demo/certs (or -dir): two CAs, the servers' and the
// clients' certificates, valid for 30 days. It replaces what is there.
//
//	go run ./examples/gateway/demo/mkcerts
//
// Made here (".pem" holds a certificate, "-key.pem" its private key, and
// "-full.pem" both, as a store or a map value of package mtls takes them):
//
//	server-ca.pem            the CA of every server: the gateway and the upstreams
//	client-ca.pem            the CA of the gateway's clients (curl)
//	gateway-full.pem         the gateway's server certificate: api.localhost, localhost, 127.0.0.1
//	alice, bob, ops, mallory client certificates for curl (CA client-ca); mallory is allowed nowhere
//	stranger                 a client certificate from another CA
//	billing-upstream-full.pem, orders-upstream-full.pem   the upstreams' server certificates
//	orders-upstream.pem      the orders upstream's certificate alone, which orders.json pins
//	billing-clients-ca.pem, orders-clients-ca.pem         the CA each upstream takes clients from
//	gw-to-billing-full.pem, gw-to-orders-full.pem         what the gateway presents to each upstream
//
// Nothing here may be trusted outside the demo. The private keys are
// written with mode 0600 and never committed (see demo/.gitignore).
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

func main() {
	dir := flag.String("dir", filepath.Join("examples", "gateway", "demo", "certs"), "the `directory` to write to")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "mkcerts:", err)
		os.Exit(1)
	}
}

type cert struct {
	der  []byte
	cert *x509.Certificate
	key  crypto.Signer
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	w := &writer{dir: dir}
	serverCA := w.ca("demo server CA", "server-ca")
	clientCA := w.ca("demo client CA", "client-ca")
	otherCA := w.ca("demo other CA", "other-ca")
	billingCA := w.ca("demo billing upstream clients CA", "billing-clients-ca")
	ordersCA := w.ca("demo orders upstream clients CA", "orders-clients-ca")

	w.leaf(serverCA, "gateway", "gateway", []string{"api.localhost", "localhost"}, true)
	for _, name := range []string{"alice", "bob", "ops", "mallory"} {
		w.leaf(clientCA, name, name, nil, false)
	}
	w.leaf(otherCA, "stranger", "stranger", nil, false)
	w.leaf(serverCA, "billing upstream", "billing-upstream", []string{"localhost"}, true)
	w.leaf(serverCA, "orders upstream", "orders-upstream", []string{"localhost"}, true)
	w.leaf(billingCA, "gateway to billing", "gw-to-billing", nil, false)
	w.leaf(ordersCA, "gateway to orders", "gw-to-orders", nil, false)
	if w.err != nil {
		return w.err
	}
	fmt.Printf("wrote the demo's certificates in %s\n", dir)
	return nil
}

type writer struct {
	dir string
	err error
}

var (
	notBefore = time.Now().Add(-time.Hour)
	notAfter  = time.Now().Add(30 * 24 * time.Hour)
)

func (w *writer) ca(cn, file string) *cert {
	if w.err != nil {
		return nil
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"mtls gateway demo"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	c := w.make(tmpl, nil)
	w.write(file+".pem", 0o644, pemBlock("CERTIFICATE", c.der))
	return c
}

func (w *writer) leaf(ca *cert, cn, file string, dns []string, server bool) {
	if w.err != nil {
		return
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"mtls gateway demo"}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	c := w.make(tmpl, ca)
	if w.err != nil {
		return
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		w.err = err
		return
	}
	certPEM, keyPEM := pemBlock("CERTIFICATE", c.der), pemBlock("PRIVATE KEY", keyDER)
	w.write(file+".pem", 0o644, certPEM)
	w.write(file+"-key.pem", 0o600, keyPEM)
	w.write(file+"-full.pem", 0o600, append(append([]byte{}, certPEM...), keyPEM...))
}

func (w *writer) make(tmpl *x509.Certificate, parent *cert) *cert {
	if w.err != nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		w.err = err
		return nil
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		w.err = err
		return nil
	}
	signer, issuer := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		w.err = err
		return nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		w.err = err
		return nil
	}
	return &cert{der: der, cert: c, key: key}
}

func (w *writer) write(name string, mode os.FileMode, data []byte) {
	if w.err != nil {
		return
	}
	path := filepath.Join(w.dir, name)
	_ = os.Remove(path) // a file of another mode from an earlier run
	w.err = os.WriteFile(path, data, mode)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
