package tykconf

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
)

// TestBuildServer: ssl_certificates by their DNS names (the first also
// the default), an API's certificates on its domain, security.certificates.apis,
// the client CAs of the gateway and of an API, and the admin API.
func TestBuildServer(t *testing.T) {
	f := newFixture(t)
	g := f.gateway(t, `{"enable_custom_domains": true, "control_api_hostname": "admin.example.com",
		"http_server_options": {"use_ssl": true, "ssl_certificates": ["certs/default.pem", "`+f.serverID+`"]},
		"security": {"certificates": {"apis": ["certs/client.pem"]}},
		"mtls": {"client_cas": ["cas/clients.pem"], "verify_depth": 2, "admin_client_cas": ["cas/admin.pem"], "admin_verify_depth": 1}}`)
	billing := f.api(t, "billing.json", `{"api_id": "billing", "active": true, "use_keyless": true, "domain": "pay.example.com",
		"use_mutual_tls_auth": true, "client_certificates": ["../certs/client.pem"], "certificates": ["../certs/other.pem"],
		"mtls": {"verify_depth": 3},
		"proxy": {"listen_path": "/billing/", "target_url": "https://up"}}`)
	open := f.api(t, "open.json", `{"api_id": "open", "active": true, "use_keyless": true, "domain": "pay.example.com",
		"use_mutual_tls_auth": false, "client_certificates": ["../certs/client.pem"],
		"proxy": {"listen_path": "/open/", "target_url": "https://up"}}`)
	off := f.api(t, "off.json", `{"api_id": "off", "active": false, "use_keyless": true,
		"proxy": {"listen_path": "/off/", "target_url": "https://up"}}`)
	sc, err := BuildServer(context.Background(), f.store, g, []*API{billing, open, off})
	require.NoError(t, err)
	p := sc.Policy
	assert.Equal(t, mtls.Map{
		"pay.example.com":     f.files["certs/other.pem"], // the API's domain
		"other.example.com":   f.files["certs/other.pem"], // its certificate's names
		"default.example.com": f.files["certs/default.pem"],
		"www.example.com":     f.files["certs/default.pem"], // the first claim wins
		"api.example.com":     f.serverID,
		"*":                   f.files["certs/default.pem"],
	}, p.Certificates)
	require.Len(t, sc.Warnings, 1)
	assert.Contains(t, sc.Warnings[0], "http_server_options.ssl_certificates[1]: the name \"www.example.com\" is already served")
	assert.Equal(t, []string{f.files["certs/client.pem"]}, p.APIClients)
	require.Len(t, p.APIs, 3, "billing, open and the admin API; not the inactive one")
	assert.Equal(t, "billing", p.APIs[0].Name)
	assert.Equal(t, "pay.example.com", p.APIs[0].Domain)
	assert.True(t, p.APIs[0].MutualTLS)
	assert.Equal(t, []string{f.files["certs/client.pem"]}, p.APIs[0].AllowedClients)
	assert.NotNil(t, p.APIs[0].ClientCAs, "the gateway's client_cas")
	assert.Equal(t, 3, p.APIs[0].VerifyDepth, "the API's verify_depth")
	assert.False(t, p.APIs[1].MutualTLS)
	assert.Nil(t, p.APIs[1].AllowedClients, "client_certificates count only with use_mutual_tls_auth")
	assert.Equal(t, mtls.APIPolicy{Name: AdminAPI, Domain: "admin.example.com", MutualTLS: true, ClientCAs: p.APIs[2].ClientCAs, VerifyDepth: 1}, p.APIs[2])
	assert.NotNil(t, p.APIs[2].ClientCAs)

	srv, err := sc.NewServer(f.store)
	require.NoError(t, err)
	srv.Close()
}

// TestBuildServerErrors: each names the file and the field.
func TestBuildServerErrors(t *testing.T) {
	f := newFixture(t)
	api := func(extra string) *API {
		return f.api(t, "a.json", `{"api_id": "a", "active": true, "use_keyless": true, "proxy": {"listen_path": "/a/", "target_url": "https://up"}`+extra+`}`)
	}
	tlsOn := `"http_server_options": {"use_ssl": true, "ssl_certificates": ["certs/default.pem"]}`
	for _, tc := range []struct {
		name  string
		conf  string
		api   *API
		build string // the error of BuildServer, "" for none
		srv   string // then the error of NewServer
	}{
		{"no server certificate", `{"http_server_options": {"use_ssl": true}}`, api(""), "tyk.conf: http_server_options.ssl_certificates: no server certificate", ""},
		{"a server certificate file missing", `{"http_server_options": {"use_ssl": true, "ssl_certificates": ["certs/none.pem"]}}`, api(""),
			"tyk.conf: http_server_options.ssl_certificates[0]: " + filepath.Join(f.dir, "certs/none.pem") + ": no such file", ""},
		{"a server certificate ID not in the store", `{"http_server_options": {"use_ssl": true, "ssl_certificates": ["` + id1 + `"]}}`, api(""),
			"tyk.conf: http_server_options.ssl_certificates[0]: not found", ""},
		{"an API certificate that is no PEM", `{` + tlsOn + `}`, api(`, "certificates": ["../cas/garbage.pem"]`), "a.json: certificates[0]: no PEM certificate", ""},
		{"a client CA file missing", `{` + tlsOn + `, "mtls": {"client_cas": ["cas/none.pem"]}}`, api(""), "tyk.conf: mtls.client_cas[0]: ", ""},
		{"a client CA file without PEM", `{` + tlsOn + `}`, api(`, "use_mutual_tls_auth": true, "mtls": {"client_cas": ["../cas/garbage.pem"]}`), "a.json: mtls.client_cas[0]: ", ""},
		{"an admin CA file missing", `{` + tlsOn + `, "mtls": {"admin_client_cas": ["cas/none.pem"]}}`, api(""), "tyk.conf: mtls.admin_client_cas[0]: ", ""},
		{"mutual TLS that accepts no client", `{` + tlsOn + `}`, api(`, "use_mutual_tls_auth": true`), "", "a.json: use_mutual_tls_auth: invalid map value: the API requires mutual TLS but accepts no client"},
		{"a client certificate missing", `{` + tlsOn + `}`, api(`, "use_mutual_tls_auth": true, "client_certificates": ["` + id2 + `"]`), "", "a.json: client_certificates[0]: \"" + id2 + "\": "},
		{"an API client missing", `{` + tlsOn + `, "security": {"certificates": {"apis": ["certs/none.pem"]}}}`, api(""), "", "tyk.conf: security.certificates.apis[0]: "},
		{"the admin API's name", `{` + tlsOn + `}`, f.api(t, "x.json", `{"api_id": "`+AdminAPI+`", "active": true, "proxy": {"listen_path": "/x/", "target_url": "http://x"}}`), "x.json: api_id: ", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := f.gateway(t, tc.conf)
			sc, err := BuildServer(context.Background(), f.store, g, []*API{tc.api})
			if tc.build != "" {
				require.Error(t, err)
				var ce *Error
				require.True(t, errors.As(err, &ce), "%T", err)
				assert.Contains(t, err.Error(), tc.build)
				return
			}
			require.NoError(t, err)
			srv, err := sc.NewServer(f.store)
			require.Error(t, err)
			srv.Close()
			var ce *Error
			require.True(t, errors.As(err, &ce), "%T: %v", err, err)
			assert.Contains(t, err.Error(), tc.srv)
		})
	}
}
