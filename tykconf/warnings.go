package tykconf

import (
	"crypto/tls"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// warnings collects the lines of Gateway.Warnings and API.Warnings, each
// "FILE: FIELD: why": a field that would change security in Tyk and that
// is not implemented.
type warnings struct {
	file string
	list []string
}

func (w *warnings) add(field, why string) { w.list = append(w.list, w.file+": "+field+": "+why) }

// gatewayWarnings names the fields of tyk.conf that change security in Tyk
// and are not implemented.
func gatewayWarnings(g *Gateway, j *gatewayJSON) []string {
	w := &warnings{file: g.File}
	if j.ControlAPIPort != 0 {
		w.add("control_api_port", "not implemented: the certificate API and /tyk/reload are served on listen_port")
	}
	if j.Security.ControlAPIUseMutualTLS && len(g.MTLS.AdminClientCAs) == 0 {
		w.add("security.control_api_use_mutual_tls", "not implemented: set mtls.admin_client_cas to require a client certificate for the certificate API")
	}
	if len(j.Security.Certificates.ControlAPI) > 0 {
		w.add("security.certificates.control_api", "not implemented: the control API presents the certificates of http_server_options.ssl_certificates")
	}
	if len(j.HTTPServerOptions.Certificates) > 0 {
		w.add("http_server_options.certificates", "not read: list the certificates (chain and key in one PEM file, or store IDs) in http_server_options.ssl_certificates")
	}
	if len(j.ProxySSLCiphers) > 0 {
		w.add("proxy_ssl_ciphers", "not implemented: upstream connections use Go's default cipher suites")
	}
	if g.MinVersion != 0 && g.MinVersion < tls.VersionTLS12 {
		w.add("http_server_options.min_version", "allows TLS versions older than 1.2")
	}
	if !g.UseSSL && g.Secret != "" {
		w.add("http_server_options.use_ssl", "false: the secret of the certificate API travels in clear")
	}
	return w.list
}

// APIWarnings returns what a's fields mean under g that a's warnings alone
// cannot tell: a domain that does not count, mutual TLS without TLS.
func (g *Gateway) APIWarnings(a *API) []string {
	w := &warnings{file: a.File}
	if a.Domain != "" && !g.EnableCustomDomains {
		w.add("domain", "ignored, as in Tyk, because tyk.conf does not set enable_custom_domains")
	}
	if !g.UseSSL && a.UseMutualTLSAuth {
		w.add("use_mutual_tls_auth", "http_server_options.use_ssl is false, so no client has a certificate and every request is refused")
	}
	if !g.UseSSL && len(a.Certificates) > 0 {
		w.add("certificates", "unused, because http_server_options.use_ssl is false")
	}
	return w.list
}

// apiWarnings names the fields of j that change security in Tyk and are
// not implemented; now dates the expiries of versions.
func apiWarnings(file string, j *apiJSON, now time.Time) []string {
	w := &warnings{file: file}
	authWarnings(w, j)
	if j.EnableIPWhitelisting {
		w.add("enable_ip_whitelisting", "not implemented: requests are not checked against allowed_ips")
	}
	if j.EnableIPBlacklisting {
		w.add("enable_ip_blacklisting", "not implemented: requests are not checked against blacklisted_ips")
	}
	endpointWarnings(w, j)
	versionWarnings(w, j, now)
	pluginWarnings(w, j)
	if j.Proxy.Transport.SSLMinVersion != 0 {
		w.add("proxy.transport.ssl_min_version", "not implemented per API: set proxy_ssl_min_version in tyk.conf")
	}
	if len(j.Proxy.Transport.SSLCiphers) > 0 {
		w.add("proxy.transport.ssl_ciphers", "not implemented: upstream connections use Go's default cipher suites")
	}
	if j.Proxy.Transport.ProxyURL != "" {
		w.add("proxy.transport.proxy_url", "not implemented: upstreams are reached directly (or through HTTPS_PROXY)")
	}
	if j.Internal {
		w.add("internal", "true: the API is not served on its listen path (as in Tyk)")
	}
	return w.list
}

// authWarnings names Tyk's authentication modes of an API that is not
// keyless (Tyk checks none on a keyless API), and says so when it has none.
func authWarnings(w *warnings, j *apiJSON) {
	if j.UseKeyless != nil && *j.UseKeyless {
		return
	}
	on := false
	for _, m := range []struct {
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
	} {
		if m.on {
			on = true
			w.add(m.field, "Tyk's "+m.what+" authentication is not implemented: requests are not checked for it")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(j.AuthConfigs)) {
		if j.AuthConfigs[k].UseCertificate {
			w.add("auth_configs."+k+".use_certificate", "Tyk's dynamic mTLS (keys bound to certificates) is not implemented: only use_mutual_tls_auth and client_certificates are checked")
		}
	}
	if !on {
		was := "false"
		if j.UseKeyless == nil {
			was = "absent"
		}
		w.add("use_keyless", was+": Tyk would require an auth token; this gateway does not check keys (set use_keyless: true to say so)")
	}
}

// endpointWarnings names the endpoint lists of each version: allow and
// block lists, and internal endpoints.
func endpointWarnings(w *warnings, j *apiJSON) {
	const everyPath = "not implemented: every path of the API is proxied"
	for _, k := range slices.Sorted(maps.Keys(j.VersionData.Versions)) {
		v := j.VersionData.Versions[k]
		for _, l := range []struct {
			field string
			n     int
			why   string
		}{
			{"extended_paths.white_list", len(v.ExtendedPaths.WhiteList), everyPath},
			{"extended_paths.black_list", len(v.ExtendedPaths.BlackList), everyPath},
			{"extended_paths.internal", len(v.ExtendedPaths.Internal), "not implemented: Tyk answers these endpoints only to its own loops (tyk://self/...) and 403 to every client; this gateway proxies them to every client"},
			{"paths.white_list", len(v.Paths.WhiteList), everyPath},
			{"paths.black_list", len(v.Paths.BlackList), everyPath},
		} {
			if l.n > 0 {
				w.add("version_data.versions."+k+"."+l.field, l.why)
			}
		}
	}
}

// expiryFormat is how Tyk writes and reads a version's expires, in UTC.
const expiryFormat = "2006-01-02 15:04"

// versionWarnings names what Tyk refuses by version, which it checks only
// when version_data.not_versioned is false: a request whose version is not
// one of the API's, and every request of a version that has expired.
func versionWarnings(w *warnings, j *apiJSON, now time.Time) {
	vd := &j.VersionData
	if vd.NotVersioned {
		return
	}
	if d := j.Definition; d.Location != "" || d.Key != "" {
		w.add("version_data.not_versioned", fmt.Sprintf("false or absent, with definition.location %q and definition.key %q: "+
			"not implemented: Tyk refuses with 403 a request whose version is not one of version_data.versions "+
			"(or that names none, when default_version is unset); this gateway does not read versions and forwards every request",
			d.Location, d.Key))
	}
	for _, k := range slices.Sorted(maps.Keys(vd.Versions)) {
		if why := expiryWarning(vd.Versions[k].Expires, now); why != "" {
			w.add("version_data.versions."+k+".expires", why)
		}
	}
}

// expiryWarning says what Tyk does with a version's expires at now; ""
// when it never expires ("" or "-1").
func expiryWarning(expires string, now time.Time) string {
	if expires == "" || expires == "-1" {
		return ""
	}
	const forwards = "; this gateway does not read expiries and forwards them"
	t, err := time.Parse(expiryFormat, expires)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a date as Tyk reads it (%s), so Tyk refuses every request of this version with 403%s", expires, expiryFormat, forwards)
	case !now.Before(t):
		return fmt.Sprintf("%q is past: Tyk refuses every request of this version with 403 (\"Api Version has expired\")%s", expires, forwards)
	default:
		return fmt.Sprintf("%q: from then on (UTC), Tyk refuses every request of this version with 403%s", expires, forwards)
	}
}

// pluginWarnings names Tyk's plugins: the hooks of custom_middleware and a
// bundle. The auth_check hook runs only with enable_coprocess_auth, which
// authWarnings names.
func pluginWarnings(w *warnings, j *apiJSON) {
	cm := &j.CustomMiddleware
	for _, h := range []struct {
		field string
		hooks []pluginJSON
		when  string
	}{
		{"custom_middleware.pre", cm.Pre, "on every request before authentication, where they may refuse or change it"},
		{"custom_middleware.post_key_auth", cm.PostKeyAuth, "on every request after authentication, where they may refuse or change it"},
		{"custom_middleware.post", cm.Post, "on every request before it is proxied, where they may refuse or change it"},
		{"custom_middleware.response", cm.Response, "on every response, where they may change it (remove data from it)"},
	} {
		var names []string
		for _, p := range h.hooks {
			if !p.Disabled {
				names = append(names, strconv.Quote(p.Name))
			}
		}
		if len(names) > 0 {
			w.add(h.field, "not implemented: Tyk runs the plugins "+strings.Join(names, ", ")+" "+h.when+"; this gateway runs none")
		}
	}
	if j.CustomMiddlewareBundle != "" && !j.CustomMiddlewareBundleDisabled {
		w.add("custom_middleware_bundle", strconv.Quote(j.CustomMiddlewareBundle)+": not implemented: Tyk runs the plugins of this bundle (the hooks of its manifest) on the API's requests; this gateway runs none")
	}
}
