package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/internal/certkit"
)

// readPEM reads and parses a PEM file as a store's Add would, expiry aside.
func readPEM(path string) (*certkit.Parsed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	p, err := certkit.Parse(data)
	if err != nil {
		return nil, usagef("%s: %v", path, err)
	}
	return p, nil
}

func pinOf(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
}

func oneFile(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usagef("give one file")
	}
	return pos[0], nil
}

// runID prints the ID of a certificate (its leaf's SHA-256) or bare public
// key (its SPKI's SHA-256), as a store names it.
func runID(e *env, fs *flag.FlagSet, args []string) error {
	path, err := oneFile(fs, args)
	if err != nil {
		return err
	}
	p, err := readPEM(path)
	if err != nil {
		return err
	}
	return e.print(map[string]string{"id": p.ID}, p.ID+"\n")
}

// runPin prints the pin of a file's certificate or key, or of the leaf a
// server presents, with the chain it sent: nothing is trusted.
func runPin(e *env, fs *flag.FlagSet, args []string) error {
	target, err := oneFile(fs, args)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(target, "https://") {
		p, err := readPEM(target)
		if err != nil {
			return err
		}
		pin := pinOf(p.SPKI)
		return e.print(map[string]string{"pin": pin}, pin+"\n")
	}
	chain, err := fetchChain(e, target)
	if err != nil {
		return err
	}
	type link struct {
		Subject string `json:"subject"`
		Issuer  string `json:"issuer"`
		ID      string `json:"id"`
		Pin     string `json:"pin"`
	}
	out := struct {
		Pin   string `json:"pin"`
		Chain []link `json:"chain"`
	}{Pin: pinOf(chain[0].RawSubjectPublicKeyInfo)}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", out.Pin)
	for i, c := range chain {
		l := link{c.Subject.String(), c.Issuer.String(), mtls.Fingerprint(c.Raw), pinOf(c.RawSubjectPublicKeyInfo)}
		out.Chain = append(out.Chain, l)
		fmt.Fprintf(&b, "  %d %s\n    issuer %s\n    id %s\n    pin %s\n", i, l.Subject, l.Issuer, l.ID, l.Pin)
	}
	return e.print(out, b.String())
}

// fetchChain connects to an https URL and returns the chain the server
// sent, without verifying it: the point is to see it.
func fetchChain(e *env, raw string) ([]*x509.Certificate, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, usagef("%q is not an https://HOST[:PORT] URL", raw)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: true}} // #nosec: shown, not trusted
	conn, err := d.DialContext(e.ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s presented no certificate", addr)
	}
	return chain, nil
}

// inspection is what inspect prints.
type inspection struct {
	ID        string    `json:"id"`
	Pin       string    `json:"pin"`
	Subject   string    `json:"subject,omitempty"`
	Issuer    string    `json:"issuer,omitempty"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	IPs       []string  `json:"ips,omitempty"`
	URIs      []string  `json:"uris,omitempty"`
	Emails    []string  `json:"emails,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	Key       string    `json:"key"`
	IsCA      bool      `json:"is_ca"`
	Chain     int       `json:"chain"`
	HasKey    bool      `json:"has_private_key"`
}

func runInspect(e *env, fs *flag.FlagSet, args []string) error {
	path, err := oneFile(fs, args)
	if err != nil {
		return err
	}
	p, err := readPEM(path)
	if err != nil {
		return err
	}
	in := inspection{ID: p.ID, Pin: pinOf(p.SPKI), Key: keyType(p.Pub), Chain: len(p.Chain), HasKey: p.Key != nil}
	if c := p.Leaf; c != nil {
		in.Subject, in.Issuer, in.DNSNames, in.Emails = c.Subject.String(), c.Issuer.String(), c.DNSNames, c.EmailAddresses
		in.NotBefore, in.NotAfter, in.IsCA = c.NotBefore.UTC(), c.NotAfter.UTC(), c.IsCA
		for _, ip := range c.IPAddresses {
			in.IPs = append(in.IPs, ip.String())
		}
		for _, u := range c.URIs {
			in.URIs = append(in.URIs, u.String())
		}
	}
	return e.print(in, in.text())
}

func (in inspection) text() string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-12s %s\n", k, v)
		}
	}
	line("subject", in.Subject)
	line("issuer", in.Issuer)
	line("dns names", strings.Join(in.DNSNames, ", "))
	line("ips", strings.Join(in.IPs, ", "))
	line("uris", strings.Join(in.URIs, ", "))
	line("emails", strings.Join(in.Emails, ", "))
	if !in.NotAfter.IsZero() {
		line("valid", in.NotBefore.Format(time.RFC3339)+" to "+in.NotAfter.Format(time.RFC3339))
	}
	line("key", in.Key)
	line("id", in.ID)
	line("pin", in.Pin)
	line("is ca", fmt.Sprint(in.IsCA))
	line("chain", fmt.Sprintf("%d certificate(s)", in.Chain))
	line("private key", fmt.Sprint(in.HasKey))
	return b.String()
}

func keyType(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}
