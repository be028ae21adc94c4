package tykconf

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// Error is a malformed file or a bad value: File is the file as named to
// the parser, Field the JSON path of the value ("" for the file as a whole).
type Error struct {
	File  string
	Field string
	Err   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Err.Error()
	}
	return e.File + ": " + e.Field + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

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

// API is what this package reads of a classic API definition.
type API struct {
	File string // the file, as named to ParseAPI or LoadAPIs
	Dir  string // the directory relative paths are read from

	APIID    string // api_id, required: the API's name in the Server's policy and in logs
	Name     string // name
	Active   bool   // active: an inactive API is not served, as in Tyk
	Internal bool   // internal: not served on its listen path, as in Tyk
	Domain   string // domain, lowercased

	ListenPath         string   // proxy.listen_path
	TargetURL          *url.URL // proxy.target_url
	StripListenPath    bool     // proxy.strip_listen_path
	InsecureSkipVerify bool     // proxy.transport.ssl_insecure_skip_verify

	UseMutualTLSAuth     bool     // use_mutual_tls_auth
	ClientCertificates   []string // client_certificates, paths resolved
	UpstreamCertificates mtls.Map // upstream_certificates, paths resolved
	PinnedPublicKeys     mtls.Map // pinned_public_keys, paths resolved
	Certificates         []string // certificates: server certificates of the domain, paths resolved

	MTLS APIMTLS // the "mtls" object

	// Warnings name the fields that would change security in Tyk and that
	// are not implemented, each as "FILE: FIELD: why".
	Warnings []string
}

// APIMTLS is the "mtls" object of an API definition; set fields replace the
// gateway's for the API.
type APIMTLS struct {
	ClientCAs   []string // client_cas: PEM files, resolved; nil: the gateway's
	VerifyDepth *int     // verify_depth; nil: the gateway's
	UpstreamCAs []string // upstream_cas: PEM files, resolved; nil: the gateway's
}

// StoreSecretEnv is the environment variable whose value, when set and not
// empty, is the store secret, whatever tyk.conf says.
const StoreSecretEnv = "MTLS_STORE_SECRET"

// maxFile bounds what is read of a configuration file.
const maxFile = 8 << 20

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

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Err: errors.Unwrap(err)}
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, maxFile+1)); err != nil {
		return nil, &Error{File: path, Err: err}
	}
	if b.Len() > maxFile {
		return nil, &Error{File: path, Err: fmt.Errorf("larger than %d bytes", maxFile)}
	}
	return b.Bytes(), nil
}

// LoadAPIs reads every API definition in dir: the files whose names end in
// ".json", in name order. It returns them all, inactive ones included; an
// error for the first file that cannot be read or parsed, and for two
// definitions with one api_id, or two active ones with one domain and
// listen path.
func LoadAPIs(dir string) ([]*API, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &Error{File: dir, Err: errors.Unwrap(err)}
	}
	var apis []*API
	byID := map[string]*API{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		a, err := ParseAPI(path, data)
		if err != nil {
			return nil, err
		}
		if prev := byID[a.APIID]; prev != nil {
			return nil, &Error{File: path, Field: "api_id", Err: fmt.Errorf("%q is also the api_id of %s", a.APIID, prev.File)}
		}
		byID[a.APIID] = a
		apis = append(apis, a)
	}
	if err := CheckRoutes(apis, true); err != nil {
		return nil, err
	}
	return apis, nil
}

// CheckRoutes reports two served APIs (active, not internal) that answer
// on the same domain and listen path. customDomains is the gateway's
// enable_custom_domains: without it, domains do not count.
func CheckRoutes(apis []*API, customDomains bool) error {
	seen := map[string]*API{}
	for _, a := range apis {
		if !a.Served() {
			continue
		}
		d := ""
		if customDomains {
			d = a.Domain
		}
		k := d + " " + a.ListenPath
		if prev := seen[k]; prev != nil {
			return &Error{File: a.File, Field: "proxy.listen_path", Err: fmt.Errorf("%q on domain %q is also the listen path of %s", a.ListenPath, d, prev.File)}
		}
		seen[k] = a
	}
	return nil
}

// Served reports whether the gateway serves a: active and not internal.
func (a *API) Served() bool { return a.Active && !a.Internal }

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
	dir := filepath.Dir(file)
	g := &Gateway{
		File: file, Dir: dir,
		ListenAddress:              j.ListenAddress,
		ListenPort:                 8080,
		Secret:                     j.Secret,
		EnableCustomDomains:        j.EnableCustomDomains,
		UseSSL:                     j.HTTPServerOptions.UseSSL,
		EnableStrictRoutes:         j.HTTPServerOptions.EnableStrictRoutes,
		ProxySSLInsecureSkipVerify: j.ProxySSLInsecureSkipVerify,
	}
	bad := func(field string, format string, args ...any) error {
		return &Error{File: file, Field: field, Err: fmt.Errorf(format, args...)}
	}
	if j.ListenPort != nil {
		if *j.ListenPort < 0 || *j.ListenPort > 65535 {
			return nil, bad("listen_port", "%d is not a port (0 to 65535)", *j.ListenPort)
		}
		g.ListenPort = *j.ListenPort
	}
	if strings.ContainsAny(j.ListenAddress, " /") {
		return nil, bad("listen_address", "%q is not an address", j.ListenAddress)
	}
	if j.AppPath != "" {
		g.AppPath = resolve(dir, j.AppPath)
	}
	if h := strings.ToLower(strings.TrimSuffix(j.ControlAPIHostname, ".")); h != "" {
		if err := checkDomain(h); err != nil {
			return nil, bad("control_api_hostname", "%v", err)
		}
		g.ControlAPIHostname = h
	}
	var err error
	if g.SSLCertificates, err = resolveList(file, "http_server_options.ssl_certificates", dir, j.HTTPServerOptions.SSLCertificates); err != nil {
		return nil, err
	}
	if g.MinVersion, err = tlsVersion(file, "http_server_options.min_version", j.HTTPServerOptions.MinVersion); err != nil {
		return nil, err
	}
	if g.MaxVersion, err = tlsVersion(file, "http_server_options.max_version", j.HTTPServerOptions.MaxVersion); err != nil {
		return nil, err
	}
	if g.MinVersion != 0 && g.MaxVersion != 0 && g.MinVersion > g.MaxVersion {
		return nil, bad("http_server_options.min_version", "%d is above max_version %d", g.MinVersion, g.MaxVersion)
	}
	if g.ProxySSLMinVersion, err = tlsVersion(file, "proxy_ssl_min_version", j.ProxySSLMinVersion); err != nil {
		return nil, err
	}
	if g.CipherSuites, err = cipherSuites(file, "http_server_options.ssl_ciphers", j.HTTPServerOptions.SSLCiphers); err != nil {
		return nil, err
	}
	if g.UpstreamCertificates, err = resolveMap(file, "security.certificates.upstream", dir, j.Security.Certificates.Upstream, false); err != nil {
		return nil, err
	}
	if g.PinnedPublicKeys, err = resolveMap(file, "security.pinned_public_keys", dir, j.Security.PinnedPublicKeys, true); err != nil {
		return nil, err
	}
	if g.APIClients, err = resolveList(file, "security.certificates.apis", dir, j.Security.Certificates.APIs); err != nil {
		return nil, err
	}
	g.StoreSecret = j.Security.PrivateCertificateEncodingSecret
	if g.StoreSecret == "" {
		g.StoreSecret = j.Secret // Tyk's fallback
	}

	m := j.MTLS
	if m.StoreDir != "" {
		g.MTLS.StoreDir = resolve(dir, m.StoreDir)
	}
	if m.VerifyDepth < 0 {
		return nil, bad("mtls.verify_depth", "%d is negative", m.VerifyDepth)
	}
	if m.AdminVerifyDepth < 0 {
		return nil, bad("mtls.admin_verify_depth", "%d is negative", m.AdminVerifyDepth)
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
		if *l.out, err = resolveFiles(file, l.field, dir, l.in); err != nil {
			return nil, err
		}
	}

	warn := func(field, why string) { g.Warnings = append(g.Warnings, file+": "+field+": "+why) }
	if j.ControlAPIPort != 0 {
		warn("control_api_port", "not implemented: the certificate API and /tyk/reload are served on listen_port")
	}
	if j.Security.ControlAPIUseMutualTLS && len(g.MTLS.AdminClientCAs) == 0 {
		warn("security.control_api_use_mutual_tls", "not implemented: set mtls.admin_client_cas to require a client certificate for the certificate API")
	}
	if len(j.Security.Certificates.ControlAPI) > 0 {
		warn("security.certificates.control_api", "not implemented: the control API presents the certificates of http_server_options.ssl_certificates")
	}
	if len(j.HTTPServerOptions.Certificates) > 0 {
		warn("http_server_options.certificates", "not read: list the certificates (chain and key in one PEM file, or store IDs) in http_server_options.ssl_certificates")
	}
	if len(j.ProxySSLCiphers) > 0 {
		warn("proxy_ssl_ciphers", "not implemented: upstream connections use Go's default cipher suites")
	}
	if g.MinVersion != 0 && g.MinVersion < tls.VersionTLS12 {
		warn("http_server_options.min_version", "allows TLS versions older than 1.2")
	}
	if !g.UseSSL && g.Secret != "" {
		warn("http_server_options.use_ssl", "false: the secret of the certificate API travels in clear")
	}
	return g, nil
}

// The JSON of a classic API definition, as far as it is read.
type apiJSON struct {
	APIID    string `json:"api_id"`
	Name     string `json:"name"`
	Active   bool   `json:"active"`
	Internal bool   `json:"internal"`
	Domain   string `json:"domain"`

	Proxy struct {
		ListenPath      string `json:"listen_path"`
		TargetURL       string `json:"target_url"`
		StripListenPath bool   `json:"strip_listen_path"`
		Transport       struct {
			SSLInsecureSkipVerify bool     `json:"ssl_insecure_skip_verify"`
			SSLMinVersion         uint16   `json:"ssl_min_version"`
			SSLCiphers            []string `json:"ssl_ciphers"`
			ProxyURL              string   `json:"proxy_url"`
		} `json:"transport"`
	} `json:"proxy"`

	UseMutualTLSAuth     bool     `json:"use_mutual_tls_auth"`
	ClientCertificates   []string `json:"client_certificates"`
	UpstreamCertificates mtls.Map `json:"upstream_certificates"`
	PinnedPublicKeys     mtls.Map `json:"pinned_public_keys"`
	Certificates         []string `json:"certificates"`

	UseKeyless              *bool `json:"use_keyless"`
	UseStandardAuth         bool  `json:"use_standard_auth"`
	UseBasicAuth            bool  `json:"use_basic_auth"`
	UseOAuth2               bool  `json:"use_oauth2"`
	EnableJWT               bool  `json:"enable_jwt"`
	UseOpenID               bool  `json:"use_openid"`
	EnableCoprocessAuth     bool  `json:"enable_coprocess_auth"`
	UseGoPluginAuth         bool  `json:"use_go_plugin_auth"`
	EnableSignatureChecking bool  `json:"enable_signature_checking"`
	ExternalOAuth           struct {
		Enabled bool `json:"enabled"`
	} `json:"external_oauth"`
	AuthConfigs map[string]struct {
		UseCertificate bool `json:"use_certificate"`
	} `json:"auth_configs"`
	EnableIPWhitelisting bool `json:"enable_ip_whitelisting"`
	EnableIPBlacklisting bool `json:"enable_ip_blacklisting"`
	VersionData          struct {
		Versions map[string]struct {
			ExtendedPaths struct {
				WhiteList []json.RawMessage `json:"white_list"`
				BlackList []json.RawMessage `json:"black_list"`
			} `json:"extended_paths"`
			Paths struct {
				WhiteList []string `json:"white_list"`
				BlackList []string `json:"black_list"`
			} `json:"paths"`
		} `json:"versions"`
	} `json:"version_data"`

	MTLS struct {
		ClientCAs   []string `json:"client_cas"`
		VerifyDepth *int     `json:"verify_depth"`
		UpstreamCAs []string `json:"upstream_cas"`
	} `json:"mtls"`
}

// ParseAPI parses data, the JSON of a classic API definition, named file
// in errors and warnings; relative paths are read from file's directory.
// It reads no file.
func ParseAPI(file string, data []byte) (*API, error) {
	var j apiJSON
	if err := decode(file, data, &j); err != nil {
		return nil, err
	}
	dir := filepath.Dir(file)
	bad := func(field string, format string, args ...any) error {
		return &Error{File: file, Field: field, Err: fmt.Errorf(format, args...)}
	}
	a := &API{
		File: file, Dir: dir,
		APIID: j.APIID, Name: j.Name, Active: j.Active, Internal: j.Internal,
		StripListenPath:    j.Proxy.StripListenPath,
		InsecureSkipVerify: j.Proxy.Transport.SSLInsecureSkipVerify,
		UseMutualTLSAuth:   j.UseMutualTLSAuth,
	}
	switch {
	case j.APIID == "":
		return nil, bad("api_id", "required")
	case !printable(j.APIID):
		return nil, bad("api_id", "%q has spaces or control characters", j.APIID)
	}
	if a.Name == "" {
		a.Name = a.APIID
	}
	if d := strings.ToLower(strings.TrimSuffix(j.Domain, ".")); d != "" {
		if err := checkDomain(d); err != nil {
			return nil, bad("domain", "%v", err)
		}
		a.Domain = d
	}
	lp := j.Proxy.ListenPath
	switch {
	case lp == "":
		return nil, bad("proxy.listen_path", "required")
	case !strings.HasPrefix(lp, "/"):
		return nil, bad("proxy.listen_path", "%q does not start with /", lp)
	case strings.ContainsAny(lp, "{}?#") || !printable(lp):
		return nil, bad("proxy.listen_path", "%q: only a plain path is supported (no {parameters}, query or spaces)", lp)
	}
	a.ListenPath = lp
	switch t, err := url.Parse(j.Proxy.TargetURL); {
	case j.Proxy.TargetURL == "":
		return nil, bad("proxy.target_url", "required")
	case err != nil:
		return nil, bad("proxy.target_url", "%v", errors.Unwrap(err))
	case t.Scheme != "http" && t.Scheme != "https":
		return nil, bad("proxy.target_url", "%q: the scheme must be http or https", j.Proxy.TargetURL)
	case t.Host == "" || t.Hostname() == "":
		return nil, bad("proxy.target_url", "%q has no host", j.Proxy.TargetURL)
	case t.User != nil:
		return nil, bad("proxy.target_url", "credentials in the URL are not supported")
	case t.RawQuery != "" || t.Fragment != "":
		return nil, bad("proxy.target_url", "%q: a query or fragment is not supported", j.Proxy.TargetURL)
	default:
		if p := t.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, bad("proxy.target_url", "%q: port %q is not 1 to 65535", j.Proxy.TargetURL, p)
			}
		} else if strings.HasSuffix(t.Host, ":") {
			return nil, bad("proxy.target_url", "%q: empty port", j.Proxy.TargetURL)
		}
		a.TargetURL = t
	}
	var err error
	if a.ClientCertificates, err = resolveList(file, "client_certificates", dir, j.ClientCertificates); err != nil {
		return nil, err
	}
	if a.UpstreamCertificates, err = resolveMap(file, "upstream_certificates", dir, j.UpstreamCertificates, false); err != nil {
		return nil, err
	}
	if a.PinnedPublicKeys, err = resolveMap(file, "pinned_public_keys", dir, j.PinnedPublicKeys, true); err != nil {
		return nil, err
	}
	if a.Certificates, err = resolveList(file, "certificates", dir, j.Certificates); err != nil {
		return nil, err
	}
	if a.MTLS.ClientCAs, err = resolveFiles(file, "mtls.client_cas", dir, j.MTLS.ClientCAs); err != nil {
		return nil, err
	}
	if a.MTLS.UpstreamCAs, err = resolveFiles(file, "mtls.upstream_cas", dir, j.MTLS.UpstreamCAs); err != nil {
		return nil, err
	}
	if d := j.MTLS.VerifyDepth; d != nil {
		if *d < 0 {
			return nil, bad("mtls.verify_depth", "%d is negative", *d)
		}
		v := *d
		a.MTLS.VerifyDepth = &v
	}
	a.Warnings = apiWarnings(file, &j)
	return a, nil
}

// apiWarnings names the fields of j that change security in Tyk and are
// not implemented.
func apiWarnings(file string, j *apiJSON) []string {
	var w []string
	warn := func(field, why string) { w = append(w, file+": "+field+": "+why) }
	keyless := j.UseKeyless != nil && *j.UseKeyless
	if !keyless {
		modes := []struct {
			on    bool
			field string
			what  string
		}{
			{j.UseStandardAuth, "use_standard_auth", "auth token"},
			{j.UseBasicAuth, "use_basic_auth", "basic"},
			{j.UseOAuth2, "use_oauth2", "OAuth 2.0"},
			{j.EnableJWT, "enable_jwt", "JWT"},
			{j.UseOpenID, "use_openid", "OpenID Connect"},
			{j.EnableCoprocessAuth, "enable_coprocess_auth", "plugin"},
			{j.UseGoPluginAuth, "use_go_plugin_auth", "Go plugin"},
			{j.EnableSignatureChecking, "enable_signature_checking", "HMAC signature"},
			{j.ExternalOAuth.Enabled, "external_oauth.enabled", "external OAuth"},
		}
		any := false
		for _, m := range modes {
			if m.on {
				any = true
				warn(m.field, "Tyk's "+m.what+" authentication is not implemented: requests are not checked for it")
			}
		}
		names := make([]string, 0, len(j.AuthConfigs))
		for k := range j.AuthConfigs {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if j.AuthConfigs[k].UseCertificate {
				warn("auth_configs."+k+".use_certificate", "Tyk's dynamic mTLS (keys bound to certificates) is not implemented: only use_mutual_tls_auth and client_certificates are checked")
			}
		}
		if !any {
			field, was := "use_keyless", "false"
			if j.UseKeyless == nil {
				was = "absent"
			}
			warn(field, was+": Tyk would require an auth token; this gateway does not check keys (set use_keyless: true to say so)")
		}
	}
	if j.EnableIPWhitelisting {
		warn("enable_ip_whitelisting", "not implemented: requests are not checked against allowed_ips")
	}
	if j.EnableIPBlacklisting {
		warn("enable_ip_blacklisting", "not implemented: requests are not checked against blacklisted_ips")
	}
	versions := make([]string, 0, len(j.VersionData.Versions))
	for k := range j.VersionData.Versions {
		versions = append(versions, k)
	}
	sort.Strings(versions)
	for _, k := range versions {
		v := j.VersionData.Versions[k]
		for _, l := range []struct {
			field string
			n     int
		}{
			{"extended_paths.white_list", len(v.ExtendedPaths.WhiteList)},
			{"extended_paths.black_list", len(v.ExtendedPaths.BlackList)},
			{"paths.white_list", len(v.Paths.WhiteList)},
			{"paths.black_list", len(v.Paths.BlackList)},
		} {
			if l.n > 0 {
				warn("version_data.versions."+k+"."+l.field, "not implemented: every path of the API is proxied")
			}
		}
	}
	if j.Proxy.Transport.SSLMinVersion != 0 {
		warn("proxy.transport.ssl_min_version", "not implemented per API: set proxy_ssl_min_version in tyk.conf")
	}
	if len(j.Proxy.Transport.SSLCiphers) > 0 {
		warn("proxy.transport.ssl_ciphers", "not implemented: upstream connections use Go's default cipher suites")
	}
	if j.Proxy.Transport.ProxyURL != "" {
		warn("proxy.transport.proxy_url", "not implemented: upstreams are reached directly (or through HTTPS_PROXY)")
	}
	if j.Internal {
		warn("internal", "true: the API is not served on its listen path (as in Tyk)")
	}
	return w
}

// decode unmarshals data into v, naming file, and the JSON path of a value
// of the wrong type, in errors.
func decode(file string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{File: file, Err: errors.New("empty file")}
	}
	if len(data) > maxFile {
		return &Error{File: file, Err: fmt.Errorf("larger than %d bytes", maxFile)}
	}
	err := json.Unmarshal(data, v)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return &Error{File: file, Err: fmt.Errorf("line %d, column %d: %v", line, col, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &Error{File: file, Err: fmt.Errorf("the file is a JSON %s, not an object", typ.Value)}
		}
		return &Error{File: file, Field: field, Err: fmt.Errorf("a JSON %s, want %s", typ.Value, jsonType(typ.Type.String()))}
	default:
		return &Error{File: file, Err: err}
	}
}

// jsonType names a Go type of the structs above as JSON does.
func jsonType(t string) string {
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer (" + t + ")"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "map") || t == "mtls.Map":
		return "an object of strings"
	default:
		return "an object"
	}
}

func position(data []byte, off int64) (line, col int) {
	off-- // the offset is after the character in error
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	line, col = 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// checkDomain checks a domain as an APIPolicy's Domain: a host pattern
// without a port.
func checkDomain(d string) error {
	if strings.ContainsAny(d, "{}") {
		return fmt.Errorf("%q: domain templates ({name}) are not supported; write a host or *.host", d)
	}
	if _, err := mtls.NewResolver(mtls.Map{d: "x"}, nil); err != nil {
		return fmt.Errorf("%q is not a host name: %v", d, strings.TrimPrefix(err.Error(), "mtls: "))
	}
	if i := strings.LastIndex(d, ":"); i >= 0 && !strings.HasSuffix(d, "]") && strings.Count(d, ":") == 1 || strings.Contains(d, "]:") {
		return fmt.Errorf("%q: a domain has no port (the gateway listens on listen_port)", d)
	}
	return nil
}

func tlsVersion(file, field string, v uint16) (uint16, error) {
	switch v {
	case 0, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
		return v, nil
	}
	return 0, &Error{File: file, Field: field, Err: fmt.Errorf("%d is not a TLS version (769: 1.0, 770: 1.1, 771: 1.2, 772: 1.3)", v)}
}

func cipherSuites(file, field string, names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	byName := map[string]uint16{}
	for _, s := range tls.CipherSuites() {
		byName[s.Name] = s.ID
	}
	for _, s := range tls.InsecureCipherSuites() {
		byName[s.Name] = s.ID
	}
	ids := make([]uint16, 0, len(names))
	for i, n := range names {
		id, ok := byName[strings.ToUpper(strings.TrimSpace(n))]
		if !ok {
			return nil, &Error{File: file, Field: field + "[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%q is not a cipher suite Go knows", n)}
		}
		ids = append(ids, id)
	}
	return ids, nil
}
