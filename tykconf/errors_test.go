package tykconf

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
)

// TestParseRejects: every rejected input, each an *Error naming the file
// and the field.
func TestParseRejects(t *testing.T) {
	api := func(fields string) string {
		return `{"api_id": "a", "active": true, "proxy": {"listen_path": "/a/", "target_url": "https://up:8443"}` + fields + `}`
	}
	apiWith := func(proxy string) string {
		return `{"api_id": "a", "active": true, "proxy": ` + proxy + `}`
	}
	for _, tc := range []struct {
		name, file, json string
		want             string // the error's text starts with it
	}{
		{"gateway: not JSON", "tyk.conf", `{"listen_port": 80,`, "tyk.conf: line 1, column 19: unexpected end of JSON input"},
		{"gateway: trailing garbage", "tyk.conf", `{} x`, "tyk.conf: line 1, column 4: invalid character 'x'"},
		{"gateway: not an object", "tyk.conf", `[1]`, "tyk.conf: the file is a JSON array, not an object"},
		{"gateway: empty", "tyk.conf", ` `, "tyk.conf: empty file"},
		{"gateway: port of the wrong type", "tyk.conf", `{"listen_port": "8080"}`, "tyk.conf: listen_port: a JSON string, want an integer"},
		{"gateway: port out of range", "tyk.conf", `{"listen_port": 70000}`, "tyk.conf: listen_port: 70000 is not a port"},
		{"gateway: use_ssl not a bool", "tyk.conf", `{"http_server_options": {"use_ssl": "yes"}}`, "tyk.conf: http_server_options.use_ssl: a JSON string, want true or false"},
		{"gateway: ssl_certificates not a list", "tyk.conf", `{"http_server_options": {"ssl_certificates": "a.pem"}}`, "tyk.conf: http_server_options.ssl_certificates: a JSON string, want an array"},
		{"gateway: empty ssl certificate", "tyk.conf", `{"http_server_options": {"ssl_certificates": [""]}}`, "tyk.conf: http_server_options.ssl_certificates[0]: empty value"},
		{"gateway: min_version not a TLS version", "tyk.conf", `{"http_server_options": {"min_version": 12}}`, "tyk.conf: http_server_options.min_version: 12 is not a TLS version"},
		{"gateway: min above max", "tyk.conf", `{"http_server_options": {"min_version": 772, "max_version": 771}}`, "tyk.conf: http_server_options.min_version: 772 is above max_version 771"},
		{"gateway: unknown cipher", "tyk.conf", `{"http_server_options": {"ssl_ciphers": ["RC5"]}}`, "tyk.conf: http_server_options.ssl_ciphers[0]: \"RC5\" is not a cipher suite"},
		{"gateway: upstream map of numbers", "tyk.conf", `{"security": {"certificates": {"upstream": {"a": 1}}}}`, "tyk.conf: security.certificates.upstream: a JSON number, want a string"},
		{"gateway: upstream pattern with a scheme", "tyk.conf", `{"security": {"certificates": {"upstream": {"https://a": "` + id1 + `"}}}}`, "tyk.conf: security.certificates.upstream: invalid host pattern"},
		{"gateway: upstream empty value", "tyk.conf", `{"security": {"certificates": {"upstream": {"a": ""}}}}`, "tyk.conf: security.certificates.upstream[\"a\"]: empty value"},
		{"gateway: pin pattern with a path", "tyk.conf", `{"security": {"pinned_public_keys": {"a/b": "sha256//x"}}}`, "tyk.conf: security.pinned_public_keys: invalid host pattern"},
		{"gateway: apis not a list", "tyk.conf", `{"security": {"certificates": {"apis": {"a": "b"}}}}`, "tyk.conf: security.certificates.apis: a JSON object, want an array"},
		{"gateway: negative verify depth", "tyk.conf", `{"mtls": {"verify_depth": -1}}`, "tyk.conf: mtls.verify_depth: -1 is negative"},
		{"gateway: negative admin depth", "tyk.conf", `{"mtls": {"admin_verify_depth": -2}}`, "tyk.conf: mtls.admin_verify_depth: -2 is negative"},
		{"gateway: empty CA path", "tyk.conf", `{"mtls": {"client_cas": [""]}}`, "tyk.conf: mtls.client_cas[0]: empty path"},
		{"gateway: control hostname with a path", "tyk.conf", `{"control_api_hostname": "a/b"}`, "tyk.conf: control_api_hostname:"},
		{"gateway: listen address with a space", "tyk.conf", `{"listen_address": "a b"}`, "tyk.conf: listen_address:"},

		{"api: not JSON", "apps/a.json", `{"api_id": }`, "apps/a.json: line 1, column 12: invalid character '}'"},
		{"api: no api_id", "apps/a.json", `{"proxy": {"listen_path": "/", "target_url": "http://a"}}`, "apps/a.json: api_id: required"},
		{"api: api_id with a space", "apps/a.json", `{"api_id": "a b", "proxy": {"listen_path": "/", "target_url": "http://a"}}`, "apps/a.json: api_id:"},
		{"api: active not a bool", "apps/a.json", `{"api_id": "a", "active": 1}`, "apps/a.json: active: a JSON number, want true or false"},
		{"api: no listen path", "apps/a.json", apiWith(`{"target_url": "http://a"}`), "apps/a.json: proxy.listen_path: required"},
		{"api: relative listen path", "apps/a.json", apiWith(`{"listen_path": "a/", "target_url": "http://a"}`), "apps/a.json: proxy.listen_path: \"a/\" does not start with /"},
		{"api: listen path with parameters", "apps/a.json", apiWith(`{"listen_path": "/a/{id}", "target_url": "http://a"}`), "apps/a.json: proxy.listen_path:"},
		{"api: no target", "apps/a.json", apiWith(`{"listen_path": "/a/"}`), "apps/a.json: proxy.target_url: required"},
		{"api: target not a URL", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "http://a b:x"}`), "apps/a.json: proxy.target_url:"},
		{"api: target of another scheme", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "ftp://a"}`), "apps/a.json: proxy.target_url: \"ftp://a\": the scheme must be http or https"},
		{"api: target without a host", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https:///x"}`), "apps/a.json: proxy.target_url: \"https:///x\" has no host"},
		{"api: target with a bad port", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https://a:0"}`), "apps/a.json: proxy.target_url:"},
		{"api: target with credentials", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https://u:p@a"}`), "apps/a.json: proxy.target_url: credentials"},
		{"api: target_url a number", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": 1}`), "apps/a.json: proxy.target_url: a JSON number, want a string"},
		{"api: skip verify not a bool", "apps/a.json", apiWith(`{"listen_path": "/a/", "target_url": "https://a", "transport": {"ssl_insecure_skip_verify": "true"}}`), "apps/a.json: proxy.transport.ssl_insecure_skip_verify: a JSON string, want true or false"},
		{"api: domain with a scheme", "apps/a.json", api(`, "domain": "https://a.com"`), "apps/a.json: domain:"},
		{"api: domain with a port", "apps/a.json", api(`, "domain": "a.com:8443"`), "apps/a.json: domain: \"a.com:8443\": a domain has no port"},
		{"api: domain template", "apps/a.json", api(`, "domain": "{sub}.a.com"`), "apps/a.json: domain: \"{sub}.a.com\": domain templates"},
		{"api: client certificates not a list", "apps/a.json", api(`, "client_certificates": "x"`), "apps/a.json: client_certificates: a JSON string, want an array"},
		{"api: empty client certificate", "apps/a.json", api(`, "client_certificates": [" "]`), "apps/a.json: client_certificates[0]: empty value"},
		{"api: upstream pattern *:PORT", "apps/a.json", api(`, "upstream_certificates": {"*:443": "` + id1 + `"}`), "apps/a.json: upstream_certificates: invalid host pattern"},
		{"api: pins of numbers", "apps/a.json", api(`, "pinned_public_keys": {"a": 1}`), "apps/a.json: pinned_public_keys: a JSON number, want a string"},
		{"api: certificates not a list", "apps/a.json", api(`, "certificates": {}`), "apps/a.json: certificates: a JSON object, want an array"},
		{"api: negative verify depth", "apps/a.json", api(`, "mtls": {"verify_depth": -1}`), "apps/a.json: mtls.verify_depth: -1 is negative"},
		{"api: empty CA path", "apps/a.json", api(`, "mtls": {"upstream_cas": [""]}`), "apps/a.json: mtls.upstream_cas[0]: empty path"},
		{"api: versions not an object", "apps/a.json", api(`, "version_data": {"versions": []}`), "apps/a.json: version_data.versions: a JSON array, want an object"},
		{"api: not_versioned not a bool", "apps/a.json", api(`, "version_data": {"not_versioned": "true"}`), "apps/a.json: version_data.not_versioned: a JSON string, want true or false"},
		{"api: plugin hooks not a list", "apps/a.json", api(`, "custom_middleware": {"pre": {"name": "x"}}`), "apps/a.json: custom_middleware.pre: a JSON object, want an array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if strings.HasSuffix(tc.file, ".conf") {
				_, err = ParseGateway(tc.file, []byte(tc.json))
			} else {
				_, err = ParseAPI(tc.file, []byte(tc.json))
			}
			require.Error(t, err)
			var ce *Error
			require.True(t, errors.As(err, &ce), "%T is not an *Error", err)
			assert.Equal(t, tc.file, ce.File)
			assert.True(t, strings.HasPrefix(err.Error(), tc.want), "error %q\ndoes not start with %q", err, tc.want)
		})
	}
}

// TestErrorsWrapTheirCause: behind the file and field, the cause stays
// reachable with errors.Is and errors.As.
func TestErrorsWrapTheirCause(t *testing.T) {
	badCert := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	for _, tc := range []struct {
		name  string
		parse func() error
		check func(error) bool
	}{
		{"a JSON syntax error", func() error { _, err := ParseGateway("tyk.conf", []byte(`{`)); return err },
			func(err error) bool { var syn *json.SyntaxError; return errors.As(err, &syn) }},
		{"a domain that is no host pattern", func() error {
			_, err := ParseAPI("a.json", []byte(`{"api_id": "a", "domain": "a..b", "proxy": {"listen_path": "/", "target_url": "http://a"}}`))
			return err
		}, func(err error) bool { return errors.Is(err, mtls.ErrInvalidPattern) }},
		{"a control API hostname that is no host pattern", func() error {
			_, err := ParseGateway("tyk.conf", []byte(`{"control_api_hostname": "a..b"}`))
			return err
		}, func(err error) bool { return errors.Is(err, mtls.ErrInvalidPattern) }},
		{"a server certificate that does not parse", func() error {
			g := &Gateway{File: "tyk.conf", UseSSL: true, SSLCertificates: []string{badCert}}
			_, err := BuildServer(context.Background(), nil, g, nil)
			return err
		}, func(err error) bool {
			var ce *Error
			return errors.As(err, &ce) && strings.HasPrefix(ce.Err.Error(), "the first certificate: ") && errors.Unwrap(ce.Err) != nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse()
			require.Error(t, err)
			var ce *Error
			require.True(t, errors.As(err, &ce), "%T", err)
			assert.True(t, tc.check(err), "the cause is lost: %v", err)
			assert.Equal(t, 1, strings.Count(err.Error(), ce.File+": "), "the file is named once: %v", err)
		})
	}
}
