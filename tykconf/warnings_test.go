package tykconf

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWarnings: the fields that change security in Tyk and that are not
// implemented are named; a plain keyless or mTLS API has no warning.
func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields string
		want   []string // the fields named, in order
	}{
		{"keyless", `"use_keyless": true`, nil},
		{"keyless with mutual TLS", `"use_keyless": true, "use_mutual_tls_auth": true, "client_certificates": ["` + id1 + `"]`, nil},
		{"use_keyless absent", ``, []string{"use_keyless"}},
		{"use_keyless false", `"use_keyless": false`, []string{"use_keyless"}},
		{"auth token with mutual TLS", `"use_keyless": false, "use_standard_auth": true, "use_mutual_tls_auth": true`, []string{"use_standard_auth"}},
		{"basic auth", `"use_basic_auth": true`, []string{"use_basic_auth"}},
		{"OAuth 2.0", `"use_oauth2": true`, []string{"use_oauth2"}},
		{"JWT", `"enable_jwt": true`, []string{"enable_jwt"}},
		{"OpenID", `"use_openid": true`, []string{"use_openid"}},
		{"coprocess", `"enable_coprocess_auth": true`, []string{"enable_coprocess_auth"}},
		{"Go plugin", `"use_go_plugin_auth": true`, []string{"use_go_plugin_auth"}},
		{"HMAC", `"enable_signature_checking": true`, []string{"enable_signature_checking"}},
		{"external OAuth", `"external_oauth": {"enabled": true}`, []string{"external_oauth.enabled"}},
		{"dynamic mTLS", `"use_standard_auth": true, "auth_configs": {"authToken": {"use_certificate": true}}`, []string{"use_standard_auth", "auth_configs.authToken.use_certificate"}},
		{"two modes", `"use_basic_auth": true, "enable_jwt": true`, []string{"use_basic_auth", "enable_jwt"}},
		{"auth modes of a keyless API are not used by Tyk", `"use_keyless": true, "use_basic_auth": true`, nil},
		{"IP allow list", `"use_keyless": true, "enable_ip_whitelisting": true`, []string{"enable_ip_whitelisting"}},
		{"IP block list", `"use_keyless": true, "enable_ip_blacklisting": true`, []string{"enable_ip_blacklisting"}},
		{"endpoint block list", `"use_keyless": true, "version_data": {"versions": {"v1": {"extended_paths": {"black_list": [{"path": "/x"}]}}}}`, []string{"version_data.versions.v1.extended_paths.black_list"}},
		{"upstream TLS version", `"use_keyless": true, "proxy": {"listen_path": "/a/", "target_url": "https://up", "transport": {"ssl_min_version": 772}}`, []string{"proxy.transport.ssl_min_version"}},
		{"internal", `"use_keyless": true, "internal": true`, []string{"internal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := apiWarningsOf(t, tc.fields)
			assert.Equal(t, tc.want, got)
		})
	}
}

// apiWarningsOf parses a minimal API definition with fields added, and
// returns the fields its warnings name, in order, and the warnings' texts.
func apiWarningsOf(t *testing.T, fields string) (named, texts []string) {
	t.Helper()
	js := `{"api_id": "a", "active": true, "proxy": {"listen_path": "/a/", "target_url": "https://up"}`
	if fields != "" {
		js += ", " + fields
	}
	a, err := ParseAPI("apps/a.json", []byte(js+"}"))
	require.NoError(t, err)
	for _, w := range a.Warnings {
		rest, ok := strings.CutPrefix(w, "apps/a.json: ")
		require.True(t, ok, "warning %q does not name the file", w)
		field, _, _ := strings.Cut(rest, ": ")
		named = append(named, field)
	}
	return named, a.Warnings
}

// TestRestrictionWarnings: what Tyk refuses by an internal endpoint, a
// version or a plugin, which this package does not implement, is named
// with why; what Tyk would not check is not.
func TestRestrictionWarnings(t *testing.T) {
	const versioned = `"use_keyless": true, "definition": {"location": "header", "key": "x-api-version"}, `
	for _, tc := range []struct {
		name   string
		fields string
		want   []string // the fields named, in order
		why    string   // in the last warning
	}{
		{"internal endpoint", `"use_keyless": true, "version_data": {"not_versioned": true, "versions": {"Default": {"use_extended_paths": true,
			"extended_paths": {"internal": [{"path": "/admin", "method": "GET"}]}}}}`,
			[]string{"version_data.versions.Default.extended_paths.internal"}, "only to its own loops"},
		{"endpoint lists in their order", `"use_keyless": true, "version_data": {"not_versioned": true, "versions": {"v": {
			"extended_paths": {"black_list": [{}], "internal": [{}]}, "paths": {"white_list": ["/x"]}}}}`,
			[]string{"version_data.versions.v.extended_paths.black_list", "version_data.versions.v.extended_paths.internal", "version_data.versions.v.paths.white_list"}, "every path"},
		{"versioned API", versioned + `"version_data": {"not_versioned": false, "versions": {"v1": {"name": "v1"}}}`,
			[]string{"version_data.not_versioned"}, `definition.location "header" and definition.key "x-api-version"`},
		{"versioned by Tyk's default", `"use_keyless": true, "definition": {"location": "url-param", "key": "v"}`,
			[]string{"version_data.not_versioned"}, "403"},
		{"version definition of an unversioned API", versioned + `"version_data": {"not_versioned": true, "versions": {"Default": {"expires": "2001-01-01 00:00"}}}`,
			nil, ""},
		{"expired version", versioned + `"version_data": {"versions": {"v1": {"expires": "2001-01-01 00:00"}, "v2": {"expires": "-1"}, "v3": {"expires": ""}}}`,
			[]string{"version_data.not_versioned", "version_data.versions.v1.expires"}, `"2001-01-01 00:00" is past`},
		{"expiry with a default version and no version definition", `"use_keyless": true, "version_data": {"default_version": "v1", "versions": {"v1": {"expires": "2999-01-01 00:00"}}}`,
			[]string{"version_data.versions.v1.expires"}, "from then on"},
		{"unreadable expiry", versioned + `"version_data": {"versions": {"v1": {"expires": "2001-01-01"}}}`,
			[]string{"version_data.not_versioned", "version_data.versions.v1.expires"}, "not a date"},
		{"request plugins", `"use_keyless": true, "custom_middleware": {"driver": "otto", "pre": [{"name": "checkCaller", "path": "middleware/check.js"}]}`,
			[]string{"custom_middleware.pre"}, `Tyk runs the plugins "checkCaller" on every request before authentication`},
		{"every hook, in order", `"use_keyless": true, "custom_middleware": {"response": [{"name": "r"}], "post": [{"name": "p"}],
			"post_key_auth": [{"name": "k"}], "pre": [{"name": "a"}, {"name": "off", "disabled": true}, {"name": "b"}]}`,
			[]string{"custom_middleware.pre", "custom_middleware.post_key_auth", "custom_middleware.post", "custom_middleware.response"}, "on every response"},
		{"disabled hooks", `"use_keyless": true, "custom_middleware": {"pre": [{"name": "a", "disabled": true}]}`, nil, ""},
		{"auth_check runs only with enable_coprocess_auth", `"use_keyless": true, "custom_middleware": {"auth_check": {"name": "auth"}}`, nil, ""},
		{"plugin bundle", `"use_keyless": true, "custom_middleware_bundle": "bundle-1.zip"`, []string{"custom_middleware_bundle"}, `"bundle-1.zip"`},
		{"disabled plugin bundle", `"use_keyless": true, "custom_middleware_bundle": "b.zip", "custom_middleware_bundle_disabled": true`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, texts := apiWarningsOf(t, tc.fields)
			require.Equal(t, tc.want, got, "warnings: %q", texts)
			if tc.why != "" {
				assert.Contains(t, texts[len(texts)-1], tc.why)
			}
		})
	}
}

// TestExpiryWarning: Tyk's reading of a version's expires, at a given
// time.
func TestExpiryWarning(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expires string
		want    string // in the warning; "" for none
	}{
		{"", ""},
		{"-1", ""},
		{"2030-06-01 11:59", "is past"},
		{"2030-06-01 12:00", "is past"}, // Tyk: expired once time.Since(expiry) >= 0
		{"2030-06-01 12:01", "from then on"},
		{"2030-06-01T12:01:00Z", "not a date"},
		{"never", "not a date"},
	} {
		got := expiryWarning(tc.expires, now)
		if tc.want == "" {
			assert.Empty(t, got, "expires %q", tc.expires)
			continue
		}
		assert.Contains(t, got, tc.want, "expires %q", tc.expires)
		assert.Contains(t, got, "403", "expires %q", tc.expires)
	}
}

// TestGatewayWarnings: the fields of tyk.conf that change security in Tyk
// and that are not implemented, and what an API's fields mean under a
// gateway.
func TestGatewayWarnings(t *testing.T) {
	g, err := ParseGateway("tyk.conf", []byte(`{"control_api_port": 9696, "security": {"control_api_use_mutual_tls": true},
		"http_server_options": {"use_ssl": true, "certificates": [{"domain_name": "a"}], "min_version": 769}, "proxy_ssl_ciphers": ["x"]}`))
	require.NoError(t, err)
	joined := strings.Join(g.Warnings, "\n")
	for _, f := range []string{"control_api_port", "security.control_api_use_mutual_tls", "http_server_options.certificates",
		"proxy_ssl_ciphers", "http_server_options.min_version"} {
		assert.Contains(t, joined, "tyk.conf: "+f+": ")
	}

	a, err := ParseAPI("apps/a.json", []byte(`{"api_id": "a", "active": true, "use_keyless": true, "domain": "x.com",
		"use_mutual_tls_auth": true, "certificates": ["c.pem"], "proxy": {"listen_path": "/", "target_url": "http://x"}}`))
	require.NoError(t, err)
	plain := &Gateway{File: "tyk.conf"}
	joined = strings.Join(plain.APIWarnings(a), "\n")
	for _, f := range []string{"domain: ignored", "use_mutual_tls_auth: http_server_options.use_ssl is false", "certificates: unused"} {
		assert.Contains(t, joined, "apps/a.json: "+f)
	}
	assert.Equal(t, "", plain.Domain(a), "without enable_custom_domains, as in Tyk")
	assert.Equal(t, "x.com", (&Gateway{EnableCustomDomains: true}).Domain(a))
}
