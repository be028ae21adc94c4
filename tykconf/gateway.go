package tykconf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/mtlsgo/mtls"
)

// Gateway is what this package reads of tyk.conf.
type Gateway struct {
	File string // the file, as named to ParseGateway or LoadGateway
	Dir  string // the directory relative paths are read from

	ListenAddress       string // listen_address; "" for every address
	ListenPort          int    // listen_port; 8080 when absent, as in Tyk
	Secret              string // secret: the key of the certificate API and /tyk/reload; "": they are off
	AppPath             string // app_path, resolved against Dir; "" when absent
	EnableCustomDomains bool   // enable_custom_domains: APIs' domains count only when set, as in Tyk
	ControlAPIHostname  string // control_api_hostname: the certificate API answers on this domain only

	UseSSL             bool     // http_server_options.use_ssl
	SSLCertificates    []string // http_server_options.ssl_certificates, paths resolved
	MinVersion         uint16   // http_server_options.min_version; 0: TLS 1.2
	MaxVersion         uint16   // http_server_options.max_version; 0: the newest
	CipherSuites       []uint16 // http_server_options.ssl_ciphers; nil: Go's defaults
	EnableStrictRoutes bool     // http_server_options.enable_strict_routes

	UpstreamCertificates       mtls.Map // security.certificates.upstream
	APIClients                 []string // security.certificates.apis
	PinnedPublicKeys           mtls.Map // security.pinned_public_keys
	StoreSecret                string   // MTLS_STORE_SECRET, or security.private_certificate_encoding_secret, or secret
	ProxySSLInsecureSkipVerify bool     // proxy_ssl_insecure_skip_verify
	ProxySSLMinVersion         uint16   // proxy_ssl_min_version

	MTLS GatewayMTLS // the "mtls" object

	// Warnings name the fields that would change security in Tyk and that
	// are not implemented, each as "FILE: FIELD: why".
	Warnings []string
}

// GatewayMTLS is the "mtls" object of tyk.conf: what Tyk has no field for.
type GatewayMTLS struct {
	StoreDir         string   // store_dir, resolved; "": an in-memory store
	ClientCAs        []string // client_cas: PEM files, resolved
	VerifyDepth      int      // verify_depth
	UpstreamCAs      []string // upstream_cas: PEM files, resolved
	AdminClientCAs   []string // admin_client_cas: PEM files, resolved
	AdminVerifyDepth int      // admin_verify_depth
}

// StoreSecretEnv is the environment variable whose value, when set and not
// empty, is the store secret, whatever tyk.conf says.
const StoreSecretEnv = "MTLS_STORE_SECRET"

// LoadGateway reads tyk.conf at path; the store secret comes from
// MTLS_STORE_SECRET when it is set.
func LoadGateway(path string) (*Gateway, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	g, err := ParseGateway(path, data)
	if err != nil {
		return nil, err
	}
	if s := os.Getenv(StoreSecretEnv); s != "" {
		g.StoreSecret = s
	}
	return g, nil
}

// The JSON of tyk.conf, as far as it is read.
type gatewayJSON struct {
	ListenAddress       string `json:"listen_address"`
	ListenPort          *int   `json:"listen_port"`
	Secret              string `json:"secret"`
	AppPath             string `json:"app_path"`
	EnableCustomDomains bool   `json:"enable_custom_domains"`
	ControlAPIHostname  string `json:"control_api_hostname"`
	ControlAPIPort      int    `json:"control_api_port"`

	HTTPServerOptions struct {
		UseSSL             bool              `json:"use_ssl"`
		SSLCertificates    []string          `json:"ssl_certificates"`
		MinVersion         uint16            `json:"min_version"`
		MaxVersion         uint16            `json:"max_version"`
		SSLCiphers         []string          `json:"ssl_ciphers"`
		EnableStrictRoutes bool              `json:"enable_strict_routes"`
		Certificates       []json.RawMessage `json:"certificates"`
	} `json:"http_server_options"`

	Security struct {
		PrivateCertificateEncodingSecret string   `json:"private_certificate_encoding_secret"`
		PinnedPublicKeys                 mtls.Map `json:"pinned_public_keys"`
		ControlAPIUseMutualTLS           bool     `json:"control_api_use_mutual_tls"`
		Certificates                     struct {
			Upstream   mtls.Map `json:"upstream"`
			APIs       []string `json:"apis"`
			ControlAPI []string `json:"control_api"`
		} `json:"certificates"`
	} `json:"security"`

	ProxySSLInsecureSkipVerify bool     `json:"proxy_ssl_insecure_skip_verify"`
	ProxySSLMinVersion         uint16   `json:"proxy_ssl_min_version"`
	ProxySSLCiphers            []string `json:"proxy_ssl_ciphers"`

	MTLS struct {
		StoreDir         string   `json:"store_dir"`
		ClientCAs        []string `json:"client_cas"`
		VerifyDepth      int      `json:"verify_depth"`
		UpstreamCAs      []string `json:"upstream_cas"`
		AdminClientCAs   []string `json:"admin_client_cas"`
		AdminVerifyDepth int      `json:"admin_verify_depth"`
	} `json:"mtls"`
}

// ParseGateway parses data, the JSON of tyk.conf, named file in errors and
// warnings; relative paths are read from file's directory. It does not read
// MTLS_STORE_SECRET (LoadGateway does) nor any file.
func ParseGateway(file string, data []byte) (*Gateway, error) {
	var j gatewayJSON
	if err := decode(file, data, &j); err != nil {
		return nil, err
	}
	g := &Gateway{
		File: file, Dir: filepath.Dir(file),
		ListenAddress:              j.ListenAddress,
		ListenPort:                 8080,
		Secret:                     j.Secret,
		EnableCustomDomains:        j.EnableCustomDomains,
		UseSSL:                     j.HTTPServerOptions.UseSSL,
		EnableStrictRoutes:         j.HTTPServerOptions.EnableStrictRoutes,
		ProxySSLInsecureSkipVerify: j.ProxySSLInsecureSkipVerify,
	}
	for _, read := range []func(*gatewayJSON) error{g.readListen, g.readTLS, g.readSecurity, g.readMTLS} {
		if err := read(&j); err != nil {
			return nil, err
		}
	}
	g.Warnings = gatewayWarnings(g, &j)
	return g, nil
}

// readListen reads where the gateway listens: listen_port,
// listen_address, app_path and control_api_hostname.
func (g *Gateway) readListen(j *gatewayJSON) error {
	if j.ListenPort != nil {
		if *j.ListenPort < 0 || *j.ListenPort > 65535 {
			return fieldError(g.File, "listen_port", "%d is not a port (0 to 65535)", *j.ListenPort)
		}
		g.ListenPort = *j.ListenPort
	}
	if strings.ContainsAny(j.ListenAddress, " /") {
		return fieldError(g.File, "listen_address", "%q is not an address", j.ListenAddress)
	}
	if j.AppPath != "" {
		g.AppPath = resolve(g.Dir, j.AppPath)
	}
	var err error
	g.ControlAPIHostname, err = parseDomain(g.File, "control_api_hostname", j.ControlAPIHostname)
	return err
}

// readTLS reads the server's certificates, TLS versions and cipher suites,
// and proxy_ssl_min_version.
func (g *Gateway) readTLS(j *gatewayJSON) error {
	o := &j.HTTPServerOptions
	var err error
	if g.SSLCertificates, err = resolveList(g.File, "http_server_options.ssl_certificates", g.Dir, o.SSLCertificates); err != nil {
		return err
	}
	if g.MinVersion, err = tlsVersion(g.File, "http_server_options.min_version", o.MinVersion); err != nil {
		return err
	}
	if g.MaxVersion, err = tlsVersion(g.File, "http_server_options.max_version", o.MaxVersion); err != nil {
		return err
	}
	if g.MinVersion != 0 && g.MaxVersion != 0 && g.MinVersion > g.MaxVersion {
		return fieldError(g.File, "http_server_options.min_version", "%d is above max_version %d", g.MinVersion, g.MaxVersion)
	}
	if g.ProxySSLMinVersion, err = tlsVersion(g.File, "proxy_ssl_min_version", j.ProxySSLMinVersion); err != nil {
		return err
	}
	g.CipherSuites, err = cipherSuites(g.File, "http_server_options.ssl_ciphers", o.SSLCiphers)
	return err
}

// readSecurity reads the security object: upstream certificates, pins,
// the certificates of API clients, and the store secret.
func (g *Gateway) readSecurity(j *gatewayJSON) error {
	s := &j.Security
	var err error
	if g.UpstreamCertificates, err = resolveMap(g.File, "security.certificates.upstream", g.Dir, s.Certificates.Upstream, false); err != nil {
		return err
	}
	if g.PinnedPublicKeys, err = resolveMap(g.File, "security.pinned_public_keys", g.Dir, s.PinnedPublicKeys, true); err != nil {
		return err
	}
	if g.APIClients, err = resolveList(g.File, "security.certificates.apis", g.Dir, s.Certificates.APIs); err != nil {
		return err
	}
	g.StoreSecret = s.PrivateCertificateEncodingSecret
	if g.StoreSecret == "" {
		g.StoreSecret = j.Secret // Tyk's fallback
	}
	return nil
}

// readMTLS reads the "mtls" object.
func (g *Gateway) readMTLS(j *gatewayJSON) error {
	m := &j.MTLS
	if m.StoreDir != "" {
		g.MTLS.StoreDir = resolve(g.Dir, m.StoreDir)
	}
	if m.VerifyDepth < 0 {
		return fieldError(g.File, "mtls.verify_depth", "%d is negative", m.VerifyDepth)
	}
	if m.AdminVerifyDepth < 0 {
		return fieldError(g.File, "mtls.admin_verify_depth", "%d is negative", m.AdminVerifyDepth)
	}
	g.MTLS.VerifyDepth, g.MTLS.AdminVerifyDepth = m.VerifyDepth, m.AdminVerifyDepth
	for _, l := range []struct {
		field string
		in    []string
		out   *[]string
	}{
		{"mtls.client_cas", m.ClientCAs, &g.MTLS.ClientCAs},
		{"mtls.upstream_cas", m.UpstreamCAs, &g.MTLS.UpstreamCAs},
		{"mtls.admin_client_cas", m.AdminClientCAs, &g.MTLS.AdminClientCAs},
	} {
		var err error
		if *l.out, err = resolveFiles(g.File, l.field, g.Dir, l.in); err != nil {
			return err
		}
	}
	return nil
}
