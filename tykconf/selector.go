package tykconf

import (
	"strconv"

	"github.com/mtlsgo/mtls"
)

// Policy returns the gateway's upstream policy, for mtls.New:
// security.certificates.upstream, security.pinned_public_keys,
// proxy_ssl_insecure_skip_verify, and mtls.upstream_cas as RootCAs.
func (g *Gateway) Policy() (mtls.Policy, error) {
	roots, err := loadPool(g.File, "mtls.upstream_cas", g.MTLS.UpstreamCAs)
	if err != nil {
		return mtls.Policy{}, err
	}
	return mtls.Policy{
		Certificates:       g.UpstreamCertificates,
		PinnedPublicKeys:   g.PinnedPublicKeys,
		InsecureSkipVerify: g.ProxySSLInsecureSkipVerify,
		RootCAs:            roots,
	}, nil
}

// Policy returns the API's upstream policy, for Selector.ForAPI:
// upstream_certificates, pinned_public_keys,
// proxy.transport.ssl_insecure_skip_verify, and mtls.upstream_cas as
// RootCAs (nil: the gateway's).
func (a *API) Policy() (mtls.Policy, error) {
	roots, err := loadPool(a.File, "mtls.upstream_cas", a.MTLS.UpstreamCAs)
	if err != nil {
		return mtls.Policy{}, err
	}
	return mtls.Policy{
		Certificates:       a.UpstreamCertificates,
		PinnedPublicKeys:   a.PinnedPublicKeys,
		InsecureSkipVerify: a.InsecureSkipVerify,
		RootCAs:            roots,
	}, nil
}

// NewSelector returns mtls.New of the gateway's Policy; its errors name
// tyk.conf and the fields.
func (g *Gateway) NewSelector(store mtls.CertStore, opts ...mtls.Option) (*mtls.Selector, error) {
	p, err := g.Policy()
	if err != nil {
		return nil, err
	}
	sel, err := mtls.New(store, p, opts...)
	if err != nil {
		return nil, g.explainSelector(err)
	}
	return sel, nil
}

func (g *Gateway) explainSelector(err error) error {
	return explainPolicy(err, func(p mtls.Problem) (string, string) {
		return g.File, selectorField(p, "security.certificates.upstream", "security.pinned_public_keys")
	}, g.File)
}

// ForAPI returns gateway.ForAPI of the API's Policy; its errors name the
// API's file and the fields.
func (a *API) ForAPI(gateway *mtls.Selector) (*mtls.Selector, error) {
	p, err := a.Policy()
	if err != nil {
		return nil, err
	}
	sel, err := gateway.ForAPI(p)
	if err != nil {
		return nil, a.explainSelector(err)
	}
	return sel, nil
}

// Update applies the API's Policy to sel, an API selector; its errors name
// the API's file and the fields.
func (a *API) Update(sel *mtls.Selector) error {
	p, err := a.Policy()
	if err != nil {
		return err
	}
	if err := sel.Update(p); err != nil {
		return a.explainSelector(err)
	}
	return nil
}

func (a *API) explainSelector(err error) error {
	return explainPolicy(err, func(p mtls.Problem) (string, string) {
		return a.File, selectorField(p, "upstream_certificates", "pinned_public_keys")
	}, a.File)
}

// selectorField names the JSON field of a problem of a Policy: certs for
// Certificates, pins for PinnedPublicKeys, with the pattern in brackets.
func selectorField(p mtls.Problem, certs, pins string) string {
	f := p.Field
	switch p.Field {
	case "Certificates":
		f = certs
	case "PinnedPublicKeys":
		f = pins
	}
	if p.Pattern != "" {
		f += "[" + strconv.Quote(p.Pattern) + "]"
	}
	return f
}
