package tykconf

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// AdminAPI is the name of the certificate API (and /tyk/reload) in the
// ServerPolicy that BuildServer makes when mtls.admin_client_cas is set; no
// API definition may use it as its api_id.
const AdminAPI = "tyk-control-api"

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

// explainPolicy turns a *mtls.PolicyError into one *Error per problem,
// named by where: file and field. Other errors name file.
func explainPolicy(err error, where func(mtls.Problem) (file, field string), file string) error {
	var pe *mtls.PolicyError
	if !errors.As(err, &pe) {
		return &Error{File: file, Err: trimmed(err)}
	}
	errs := make([]error, 0, len(pe.Problems))
	for _, p := range pe.Problems {
		f, field := where(p)
		why := trimmed(p.Err)
		if p.Value != "" {
			why = fmt.Errorf("%s: %w", describeValue(p.Value), why)
		}
		errs = append(errs, &Error{File: f, Field: field, Err: why})
	}
	return errors.Join(errs...)
}

// describeValue names a value in an error: package mtls already gives
// inline PEM by its hash; a long value is cut.
func describeValue(v string) string {
	if len(v) > 120 {
		v = v[:117] + "..."
	}
	return strconv.Quote(v)
}

// loadPool reads PEM files of CA certificates into a pool; nil for none.
func loadPool(file, field string, paths []string) (*x509.CertPool, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for i, p := range paths {
		f := field + "[" + strconv.Itoa(i) + "]"
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, &Error{File: file, Field: f, Err: pathError(err)}
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, &Error{File: file, Field: f, Err: fmt.Errorf("%s holds no PEM certificate", p)}
		}
	}
	return pool, nil
}

func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// Domain returns the domain a is served on under g: its domain when g has
// enable_custom_domains, else "" (every domain), as in Tyk.
func (g *Gateway) Domain(a *API) string {
	if !g.EnableCustomDomains {
		return ""
	}
	return a.Domain
}

// APIWarnings returns what a's fields mean under g that a's warnings alone
// cannot tell: a domain that does not count, mutual TLS without TLS.
func (g *Gateway) APIWarnings(a *API) []string {
	var w []string
	if a.Domain != "" && !g.EnableCustomDomains {
		w = append(w, a.File+": domain: ignored, as in Tyk, because tyk.conf does not set enable_custom_domains")
	}
	if !g.UseSSL && a.UseMutualTLSAuth {
		w = append(w, a.File+": use_mutual_tls_auth: http_server_options.use_ssl is false, so no client has a certificate and every request is refused")
	}
	if !g.UseSSL && len(a.Certificates) > 0 {
		w = append(w, a.File+": certificates: unused, because http_server_options.use_ssl is false")
	}
	return w
}

// ServerConfig is the client-facing policy of a gateway and its APIs, and
// where each of its values comes from.
type ServerConfig struct {
	Policy mtls.ServerPolicy
	// Warnings: certificate names that cannot be patterns, and names that
	// two certificates claim.
	Warnings []string

	file    string
	origins map[string]string // problem key -> "FILE\x00FIELD"
}

// BuildServer returns the ServerPolicy of g and the served APIs of apis:
//   - Certificates: each API's domain maps to the first of its
//     certificates; every DNS name of each certificate of an API, then of
//     http_server_options.ssl_certificates, maps to it (the first claim of
//     a name wins); and "*", the certificate of clients that send no SNI or
//     an unknown one, is the first of ssl_certificates (else the first
//     certificate of an API without a domain);
//   - APIClients: security.certificates.apis;
//   - APIs: one per served API, named by its api_id, with MutualTLS from
//     use_mutual_tls_auth, AllowedClients from client_certificates, and
//     the client CAs and depth of its mtls object or of the gateway's;
//   - with mtls.admin_client_cas, the API AdminAPI on control_api_hostname
//     (every domain when unset), which requires a client certificate from
//     those CAs.
//
// It reads each server certificate (from store, a file or inline PEM) for
// its DNS names, and every CA file.
func BuildServer(ctx context.Context, store mtls.CertStore, g *Gateway, apis []*API) (*ServerConfig, error) {
	sc := &ServerConfig{file: g.File, origins: map[string]string{}}
	certs := mtls.Map{}
	claim := func(pattern, value, file, field string) {
		k := strings.ToLower(strings.TrimSuffix(pattern, "."))
		if prev, ok := certs[k]; ok {
			if prev != value {
				sc.Warnings = append(sc.Warnings, fmt.Sprintf("%s: %s: the name %q is already served with another certificate (%s)", file, field, pattern, sc.where(k)))
			}
			return
		}
		if _, err := mtls.NewResolver(mtls.Map{k: "x"}, nil); err != nil {
			sc.Warnings = append(sc.Warnings, fmt.Sprintf("%s: %s: the name %q is not a host pattern; not used for SNI: %v", file, field, pattern, trimmed(err)))
			return
		}
		certs[k] = value
		sc.origins["Certificates\x00"+k] = file + "\x00" + field
	}
	served := make([]*API, 0, len(apis))
	for _, a := range apis {
		if a.Served() {
			if a.APIID == AdminAPI {
				return nil, &Error{File: a.File, Field: "api_id", Err: fmt.Errorf("%q is the name of the certificate API", AdminAPI)}
			}
			served = append(served, a)
		}
	}
	// 1. Each API's domain: its first certificate.
	for _, a := range served {
		if d := g.Domain(a); d != "" && len(a.Certificates) > 0 {
			claim(d, a.Certificates[0], a.File, "certificates[0]")
		}
	}
	// 2. The DNS names of the APIs' certificates, then of ssl_certificates.
	type named struct {
		file, field, value string
	}
	var all []named
	for _, a := range served {
		for i, c := range a.Certificates {
			all = append(all, named{a.File, "certificates[" + strconv.Itoa(i) + "]", c})
		}
	}
	for i, c := range g.SSLCertificates {
		all = append(all, named{g.File, "http_server_options.ssl_certificates[" + strconv.Itoa(i) + "]", c})
	}
	for _, n := range all {
		leaf, err := readLeaf(ctx, store, n.value)
		if err != nil {
			return nil, &Error{File: n.file, Field: n.field, Err: err}
		}
		for _, name := range leaf.DNSNames {
			claim(name, n.value, n.file, n.field)
		}
	}
	// 3. The default.
	switch {
	case len(g.SSLCertificates) > 0:
		claim("*", g.SSLCertificates[0], g.File, "http_server_options.ssl_certificates[0]")
	default:
		for _, a := range served {
			if g.Domain(a) == "" && len(a.Certificates) > 0 {
				claim("*", a.Certificates[0], a.File, "certificates[0]")
				break
			}
		}
	}
	if g.UseSSL && len(certs) == 0 {
		return nil, &Error{File: g.File, Field: "http_server_options.ssl_certificates", Err: errors.New("no server certificate: list one here or in an API's certificates")}
	}
	sc.Policy.Certificates = certs

	sc.Policy.APIClients = g.APIClients
	for i, v := range g.APIClients {
		o := g.File + "\x00security.certificates.apis[" + strconv.Itoa(i) + "]"
		sc.origins["APIClients["+strconv.Itoa(i)+"]"] = o
		sc.origins["APIClients\x00"+v] = o
	}
	gwCAs, err := loadPool(g.File, "mtls.client_cas", g.MTLS.ClientCAs)
	if err != nil {
		return nil, err
	}
	for _, a := range served {
		ap := mtls.APIPolicy{Name: a.APIID, Domain: g.Domain(a), MutualTLS: a.UseMutualTLSAuth}
		if a.UseMutualTLSAuth {
			ap.AllowedClients = a.ClientCertificates
			ap.ClientCAs, ap.VerifyDepth = gwCAs, g.MTLS.VerifyDepth
			if a.MTLS.ClientCAs != nil {
				if ap.ClientCAs, err = loadPool(a.File, "mtls.client_cas", a.MTLS.ClientCAs); err != nil {
					return nil, err
				}
			}
			if a.MTLS.VerifyDepth != nil {
				ap.VerifyDepth = *a.MTLS.VerifyDepth
			}
		}
		key := "APIs[" + strconv.Quote(a.APIID) + "]"
		sc.origins[key] = a.File + "\x00use_mutual_tls_auth"
		sc.origins[key+".Domain"] = a.File + "\x00domain"
		for i, v := range ap.AllowedClients {
			o := a.File + "\x00client_certificates[" + strconv.Itoa(i) + "]"
			sc.origins[key+".AllowedClients["+strconv.Itoa(i)+"]"] = o
			sc.origins[key+".AllowedClients\x00"+v] = o
		}
		sc.Policy.APIs = append(sc.Policy.APIs, ap)
	}
	if len(g.MTLS.AdminClientCAs) > 0 {
		pool, err := loadPool(g.File, "mtls.admin_client_cas", g.MTLS.AdminClientCAs)
		if err != nil {
			return nil, err
		}
		sc.Policy.APIs = append(sc.Policy.APIs, mtls.APIPolicy{
			Name: AdminAPI, Domain: g.ControlAPIHostname, MutualTLS: true,
			ClientCAs: pool, VerifyDepth: g.MTLS.AdminVerifyDepth,
		})
		sc.origins["APIs["+strconv.Quote(AdminAPI)+"]"] = g.File + "\x00mtls.admin_client_cas"
	}
	return sc, nil
}

func (sc *ServerConfig) where(key string) string {
	o := sc.origins["Certificates\x00"+key]
	f, field, _ := strings.Cut(o, "\x00")
	return f + ": " + field
}

// Explain names the files and fields of the problems of err, an error of
// mtls.NewServer or Server.Update with sc.Policy.
func (sc *ServerConfig) Explain(err error) error {
	if err == nil {
		return nil
	}
	var pe *mtls.PolicyError
	if !errors.As(err, &pe) {
		// A domain the Server refused: APIs["id"].Domain: ...
		msg := strings.TrimPrefix(err.Error(), "mtls: ")
		for key, o := range sc.origins {
			if strings.HasPrefix(msg, key+": ") || strings.HasPrefix(msg, key+" ") {
				f, field, _ := strings.Cut(o, "\x00")
				return &Error{File: f, Field: field, Err: trimmed(err)}
			}
		}
		return &Error{File: sc.file, Err: trimmed(err)}
	}
	return explainPolicy(err, func(p mtls.Problem) (string, string) {
		key := p.Field
		if p.Field == "Certificates" {
			key = "Certificates\x00" + strings.ToLower(strings.TrimSuffix(p.Pattern, "."))
		}
		for _, k := range []string{key, key + "\x00" + p.Value} {
			if o, ok := sc.origins[k]; ok {
				f, field, _ := strings.Cut(o, "\x00")
				return f, field
			}
		}
		return sc.file, p.Field
	}, sc.file)
}

// NewServer returns mtls.NewServer of sc.Policy; its errors name the files
// and fields.
func (sc *ServerConfig) NewServer(store mtls.CertStore, opts ...mtls.Option) (*mtls.Server, error) {
	srv, err := mtls.NewServer(store, sc.Policy, opts...)
	if err != nil {
		return nil, sc.Explain(err)
	}
	return srv, nil
}

// metadataStore is a CertStore that gives metadata without decrypting.
type metadataStore interface {
	Metadata(ctx context.Context, id string) (mtls.Metadata, error)
}

// leafInfo is what BuildServer needs of a server certificate.
type leafInfo struct{ DNSNames []string }

// readLeaf reads the leaf of a certificate value: a store ID, inline PEM or
// a file.
func readLeaf(ctx context.Context, store mtls.CertStore, v string) (leafInfo, error) {
	if isID(v) {
		if store == nil {
			return leafInfo{}, errors.New("a store ID, but there is no store")
		}
		if ms, ok := store.(metadataStore); ok {
			md, err := ms.Metadata(ctx, v)
			if err != nil {
				return leafInfo{}, trimmed(err)
			}
			return leafInfo{DNSNames: md.DNSNames}, nil
		}
		c, err := store.Get(ctx, v)
		if err != nil {
			return leafInfo{}, trimmed(err)
		}
		return leafInfo{DNSNames: c.DNSNames}, nil
	}
	data := []byte(v)
	if !strings.Contains(v, "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(v); err != nil {
			return leafInfo{}, pathError(err)
		}
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return leafInfo{}, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return leafInfo{}, fmt.Errorf("the first certificate: %v", err)
			}
			return leafInfo{DNSNames: c.DNSNames}, nil
		}
	}
}

// isID reports whether v is a store ID: 64 lowercase hex digits, optionally
// behind an organisation prefix of letters and digits.
func isID(v string) bool {
	if len(v) < 64 {
		return false
	}
	for _, c := range v[len(v)-64:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	for _, c := range v[:len(v)-64] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
