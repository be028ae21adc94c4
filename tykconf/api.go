package tykconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mtlsgo/mtls"
)

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
			return nil, fieldError(path, "api_id", "%q is also the api_id of %s", a.APIID, prev.File)
		}
		byID[a.APIID] = a
		apis = append(apis, a)
	}
	if err := CheckRoutes(apis, true); err != nil {
		return nil, err
	}
	return apis, nil
}

// The JSON of a classic API definition, as far as it is read; the fields
// after Certificates are read only for warnings.
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

	Definition struct { // where a versioned API reads a request's version
		Location string `json:"location"`
		Key      string `json:"key"`
	} `json:"definition"`
	VersionData struct {
		NotVersioned bool                   `json:"not_versioned"`
		Versions     map[string]versionJSON `json:"versions"`
	} `json:"version_data"`

	CustomMiddleware struct {
		Pre         []pluginJSON `json:"pre"`
		PostKeyAuth []pluginJSON `json:"post_key_auth"`
		Post        []pluginJSON `json:"post"`
		Response    []pluginJSON `json:"response"`
	} `json:"custom_middleware"`
	CustomMiddlewareBundle         string `json:"custom_middleware_bundle"`
	CustomMiddlewareBundleDisabled bool   `json:"custom_middleware_bundle_disabled"`

	MTLS struct {
		ClientCAs   []string `json:"client_cas"`
		VerifyDepth *int     `json:"verify_depth"`
		UpstreamCAs []string `json:"upstream_cas"`
	} `json:"mtls"`
}

// versionJSON is a version of version_data.versions, as far as it is read.
type versionJSON struct {
	Expires       string `json:"expires"`
	ExtendedPaths struct {
		WhiteList []json.RawMessage `json:"white_list"`
		BlackList []json.RawMessage `json:"black_list"`
		Internal  []json.RawMessage `json:"internal"`
	} `json:"extended_paths"`
	Paths struct {
		WhiteList []string `json:"white_list"`
		BlackList []string `json:"black_list"`
	} `json:"paths"`
}

// pluginJSON is a hook of custom_middleware.
type pluginJSON struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
}

// ParseAPI parses data, the JSON of a classic API definition, named file
// in errors and warnings; relative paths are read from file's directory.
// It reads no file.
func ParseAPI(file string, data []byte) (*API, error) {
	var j apiJSON
	if err := decode(file, data, &j); err != nil {
		return nil, err
	}
	a := &API{
		File: file, Dir: filepath.Dir(file),
		APIID: j.APIID, Name: j.Name, Active: j.Active, Internal: j.Internal,
		StripListenPath:    j.Proxy.StripListenPath,
		InsecureSkipVerify: j.Proxy.Transport.SSLInsecureSkipVerify,
		UseMutualTLSAuth:   j.UseMutualTLSAuth,
	}
	for _, read := range []func(*apiJSON) error{a.readID, a.readRoute, a.readTarget, a.readCertificates, a.readMTLS} {
		if err := read(&j); err != nil {
			return nil, err
		}
	}
	a.Warnings = apiWarnings(file, &j, time.Now())
	return a, nil
}

// readID checks api_id; name defaults to it.
func (a *API) readID(j *apiJSON) error {
	switch {
	case j.APIID == "":
		return fieldError(a.File, "api_id", "required")
	case !printable(j.APIID):
		return fieldError(a.File, "api_id", "%q has spaces or control characters", j.APIID)
	}
	if a.Name == "" {
		a.Name = a.APIID
	}
	return nil
}

// readRoute reads where the API answers: domain and proxy.listen_path.
func (a *API) readRoute(j *apiJSON) error {
	var err error
	if a.Domain, err = parseDomain(a.File, "domain", j.Domain); err != nil {
		return err
	}
	lp := j.Proxy.ListenPath
	switch {
	case lp == "":
		return fieldError(a.File, "proxy.listen_path", "required")
	case !strings.HasPrefix(lp, "/"):
		return fieldError(a.File, "proxy.listen_path", "%q does not start with /", lp)
	case strings.ContainsAny(lp, "{}?#") || !printable(lp):
		return fieldError(a.File, "proxy.listen_path", "%q: only a plain path is supported (no {parameters}, query or spaces)", lp)
	}
	a.ListenPath = lp
	return nil
}

// readTarget reads proxy.target_url.
func (a *API) readTarget(j *apiJSON) error {
	t, err := parseTarget(j.Proxy.TargetURL)
	if err != nil {
		return &Error{File: a.File, Field: "proxy.target_url", Err: err}
	}
	a.TargetURL = t
	return nil
}

// parseTarget checks a target URL: http or https, a host, a port from 1 to
// 65535 if any, and no credentials, query or fragment.
func parseTarget(raw string) (*url.URL, error) {
	t, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, errors.New("required")
	case err != nil:
		return nil, errors.Unwrap(err) // the *url.Error would repeat the URL
	case t.Scheme != "http" && t.Scheme != "https":
		return nil, fmt.Errorf("%q: the scheme must be http or https", raw)
	case t.Host == "" || t.Hostname() == "":
		return nil, fmt.Errorf("%q has no host", raw)
	case t.User != nil:
		return nil, errors.New("credentials in the URL are not supported")
	case t.RawQuery != "" || t.Fragment != "":
		return nil, fmt.Errorf("%q: a query or fragment is not supported", raw)
	}
	if p := t.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port %q is not 1 to 65535", raw, p)
		}
	} else if strings.HasSuffix(t.Host, ":") {
		return nil, fmt.Errorf("%q: empty port", raw)
	}
	return t, nil
}

// readCertificates reads client_certificates, upstream_certificates,
// pinned_public_keys and certificates.
func (a *API) readCertificates(j *apiJSON) error {
	var err error
	if a.ClientCertificates, err = resolveList(a.File, "client_certificates", a.Dir, j.ClientCertificates); err != nil {
		return err
	}
	if a.UpstreamCertificates, err = resolveMap(a.File, "upstream_certificates", a.Dir, j.UpstreamCertificates, false); err != nil {
		return err
	}
	if a.PinnedPublicKeys, err = resolveMap(a.File, "pinned_public_keys", a.Dir, j.PinnedPublicKeys, true); err != nil {
		return err
	}
	a.Certificates, err = resolveList(a.File, "certificates", a.Dir, j.Certificates)
	return err
}

// readMTLS reads the "mtls" object.
func (a *API) readMTLS(j *apiJSON) error {
	var err error
	if a.MTLS.ClientCAs, err = resolveFiles(a.File, "mtls.client_cas", a.Dir, j.MTLS.ClientCAs); err != nil {
		return err
	}
	if a.MTLS.UpstreamCAs, err = resolveFiles(a.File, "mtls.upstream_cas", a.Dir, j.MTLS.UpstreamCAs); err != nil {
		return err
	}
	if d := j.MTLS.VerifyDepth; d != nil {
		if *d < 0 {
			return fieldError(a.File, "mtls.verify_depth", "%d is negative", *d)
		}
		v := *d
		a.MTLS.VerifyDepth = &v
	}
	return nil
}
