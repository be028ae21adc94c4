package mtls

import (
	"crypto/x509"
	"net/http"
	"slices"
	"strings"
)

// This file holds who a client is (semantics §7): the identity of a
// verified client certificate for handlers, and the Authorizers that allow
// clients by name.

// Client is the identity of a client certificate, for authentication,
// authorisation and logs.
type Client struct {
	ID         string   // the certificate's ID (see [Fingerprint])
	Subject    string   // the subject, as crypto/x509/pkix.Name.String formats it
	CommonName string   // the subject's common name
	DNSNames   []string // DNS subject alternative names
	URIs       []string // URI subject alternative names: a SPIFFE ID is one
	Leaf       *x509.Certificate
}

// ClientFromCert returns the identity of a client's leaf certificate. It
// does not verify anything: use it on a certificate that was verified, as
// [VerifiedClient] gives.
func ClientFromCert(leaf *x509.Certificate) Client {
	c := Client{ID: Fingerprint(leaf.Raw), Subject: leaf.Subject.String(), CommonName: leaf.Subject.CommonName,
		DNSNames: leaf.DNSNames, Leaf: leaf}
	for _, u := range leaf.URIs {
		c.URIs = append(c.URIs, u.String())
	}
	return c
}

type clientKey struct{}

// VerifiedClient returns the client whose certificate the middleware of a
// [Server] (see [Server.Middleware]) verified for the request, and false
// when the request did not pass through it or presented no certificate.
func VerifiedClient(r *http.Request) (Client, bool) {
	c, ok := r.Context().Value(clientKey{}).(*Client)
	if !ok || c == nil {
		return Client{}, false
	}
	return *c, true
}

// An Authorizer allows a client by what its certificate says, when the
// certificate chains to the client CAs: it returns nil for a client it
// allows, and an error saying why not otherwise. Authorizers allow by
// name, which anyone can write into a certificate of their own: a policy
// with an Authorizer must have client CAs. Make one with the constructors
// below, as ghostunnel's --allow-* flags do.
type Authorizer func(leaf *x509.Certificate) error

// AuthorizeCommonName allows a client whose subject common name is one of
// names.
func AuthorizeCommonName(names ...string) Authorizer {
	return func(leaf *x509.Certificate) error {
		if slices.Contains(names, leaf.Subject.CommonName) {
			return nil
		}
		return errorf("common name %q is not allowed", leaf.Subject.CommonName)
	}
}

// AuthorizeOrganizationalUnit allows a client whose subject has one of the
// organisational units ous.
func AuthorizeOrganizationalUnit(ous ...string) Authorizer {
	return func(leaf *x509.Certificate) error {
		for _, ou := range leaf.Subject.OrganizationalUnit {
			if slices.Contains(ous, ou) {
				return nil
			}
		}
		return errorf("organisational units %q are not allowed", leaf.Subject.OrganizationalUnit)
	}
}

// AuthorizeDNSName allows a client with one of the DNS subject alternative
// names (compared case-insensitively).
func AuthorizeDNSName(names ...string) Authorizer {
	return func(leaf *x509.Certificate) error {
		for _, n := range leaf.DNSNames {
			if slices.ContainsFunc(names, func(want string) bool { return strings.EqualFold(want, n) }) {
				return nil
			}
		}
		return errorf("DNS names %q are not allowed", leaf.DNSNames)
	}
}

// AuthorizeURI allows a client with one of the URI subject alternative
// names, such as a SPIFFE ID ("spiffe://example.org/payments").
func AuthorizeURI(uris ...string) Authorizer {
	return func(leaf *x509.Certificate) error {
		var got []string
		for _, u := range leaf.URIs {
			if slices.Contains(uris, u.String()) {
				return nil
			}
			got = append(got, u.String())
		}
		return errorf("URIs %q are not allowed", got)
	}
}

// AuthorizeOneOf allows a client that one of authorizers allows.
func AuthorizeOneOf(authorizers ...Authorizer) Authorizer {
	return func(leaf *x509.Certificate) error {
		var errs []string
		for _, a := range authorizers {
			err := a(leaf)
			if err == nil {
				return nil
			}
			errs = append(errs, unprefixed(err).Error())
		}
		return errorf("%s", strings.Join(errs, "; "))
	}
}
