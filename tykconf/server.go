package tykconf

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// AdminAPI is the name of the certificate API (and /tyk/reload) in the
// ServerPolicy that BuildServer makes when mtls.admin_client_cas is set; no
// API definition may use it as its api_id.
const AdminAPI = "tyk-control-api"

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
	served, err := servedAPIs(apis)
	if err != nil {
		return nil, err
	}
	sc := &ServerConfig{file: g.File, origins: map[string]string{}}
	sc.Policy.Certificates = mtls.Map{}
	if err := sc.addCertificates(ctx, store, g, served); err != nil {
		return nil, err
	}
	sc.addAPIClients(g)
	if err := sc.addAPIs(g, served); err != nil {
		return nil, err
	}
	if err := sc.addAdminAPI(g); err != nil {
		return nil, err
	}
	return sc, nil
}

// servedAPIs returns the APIs the gateway serves; none may be named
// AdminAPI.
func servedAPIs(apis []*API) ([]*API, error) {
	served := make([]*API, 0, len(apis))
	for _, a := range apis {
		if a.Served() {
			if a.APIID == AdminAPI {
				return nil, fieldError(a.File, "api_id", "%q is the name of the certificate API", AdminAPI)
			}
			served = append(served, a)
		}
	}
	return served, nil
}

// addCertificates fills Policy.Certificates: each API's domain, then the
// DNS names of every server certificate, then the default "*".
func (sc *ServerConfig) addCertificates(ctx context.Context, store mtls.CertStore, g *Gateway, served []*API) error {
	for _, a := range served {
		if d := g.Domain(a); d != "" && len(a.Certificates) > 0 {
			sc.claim(d, a.Certificates[0], a.File, "certificates[0]")
		}
	}
	if err := sc.claimDNSNames(ctx, store, g, served); err != nil {
		return err
	}
	switch {
	case len(g.SSLCertificates) > 0:
		sc.claim("*", g.SSLCertificates[0], g.File, "http_server_options.ssl_certificates[0]")
	default:
		for _, a := range served {
			if g.Domain(a) == "" && len(a.Certificates) > 0 {
				sc.claim("*", a.Certificates[0], a.File, "certificates[0]")
				break
			}
		}
	}
	if g.UseSSL && len(sc.Policy.Certificates) == 0 {
		return fieldError(g.File, "http_server_options.ssl_certificates", "no server certificate: list one here or in an API's certificates")
	}
	return nil
}

// claimDNSNames claims the DNS names of the APIs' certificates, then of
// ssl_certificates, each for its certificate.
func (sc *ServerConfig) claimDNSNames(ctx context.Context, store mtls.CertStore, g *Gateway, served []*API) error {
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
			return &Error{File: n.file, Field: n.field, Err: err}
		}
		for _, name := range leaf.DNSNames {
			sc.claim(name, n.value, n.file, n.field)
		}
	}
	return nil
}

// claim maps pattern to value in Policy.Certificates, from file and field,
// unless an earlier claim holds it; a name that is not a host pattern, or
// that another certificate holds, is a warning.
func (sc *ServerConfig) claim(pattern, value, file, field string) {
	k := strings.ToLower(strings.TrimSuffix(pattern, "."))
	if prev, ok := sc.Policy.Certificates[k]; ok {
		if prev != value {
			sc.Warnings = append(sc.Warnings, fmt.Sprintf("%s: %s: the name %q is already served with another certificate (%s)", file, field, pattern, sc.where(k)))
		}
		return
	}
	if _, err := mtls.NewResolver(mtls.Map{k: "x"}, nil); err != nil {
		sc.Warnings = append(sc.Warnings, fmt.Sprintf("%s: %s: the name %q is not a host pattern; not used for SNI: %v", file, field, pattern, trimmed(err)))
		return
	}
	sc.Policy.Certificates[k] = value
	sc.origins["Certificates\x00"+k] = file + "\x00" + field
}

// where names the file and field that claimed the certificate pattern key.
func (sc *ServerConfig) where(key string) string {
	o := sc.origins["Certificates\x00"+key]
	f, field, _ := strings.Cut(o, "\x00")
	return f + ": " + field
}

// addAPIClients sets Policy.APIClients: security.certificates.apis.
func (sc *ServerConfig) addAPIClients(g *Gateway) {
	sc.Policy.APIClients = g.APIClients
	for i, v := range g.APIClients {
		o := g.File + "\x00security.certificates.apis[" + strconv.Itoa(i) + "]"
		sc.origins["APIClients["+strconv.Itoa(i)+"]"] = o
		sc.origins["APIClients\x00"+v] = o
	}
}

// addAPIs adds an APIPolicy per served API, with the gateway's client CAs
// unless its mtls object has its own.
func (sc *ServerConfig) addAPIs(g *Gateway, served []*API) error {
	gwCAs, err := loadPool(g.File, "mtls.client_cas", g.MTLS.ClientCAs)
	if err != nil {
		return err
	}
	for _, a := range served {
		ap := mtls.APIPolicy{Name: a.APIID, Domain: g.Domain(a), MutualTLS: a.UseMutualTLSAuth}
		if a.UseMutualTLSAuth {
			ap.AllowedClients = a.ClientCertificates
			ap.ClientCAs, ap.VerifyDepth = gwCAs, g.MTLS.VerifyDepth
			if a.MTLS.ClientCAs != nil {
				if ap.ClientCAs, err = loadPool(a.File, "mtls.client_cas", a.MTLS.ClientCAs); err != nil {
					return err
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
	return nil
}

// addAdminAPI adds AdminAPI when mtls.admin_client_cas is set.
func (sc *ServerConfig) addAdminAPI(g *Gateway) error {
	if len(g.MTLS.AdminClientCAs) == 0 {
		return nil
	}
	pool, err := loadPool(g.File, "mtls.admin_client_cas", g.MTLS.AdminClientCAs)
	if err != nil {
		return err
	}
	sc.Policy.APIs = append(sc.Policy.APIs, mtls.APIPolicy{
		Name: AdminAPI, Domain: g.ControlAPIHostname, MutualTLS: true,
		ClientCAs: pool, VerifyDepth: g.MTLS.AdminVerifyDepth,
	})
	sc.origins["APIs["+strconv.Quote(AdminAPI)+"]"] = g.File + "\x00mtls.admin_client_cas"
	return nil
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
