package tykconf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
)

// gatewayConf sets every field of tyk.conf that this package reads.
const gatewayConf = `{
  "listen_address": "127.0.0.1",
  "listen_port": 8443,
  "secret": "s3cret",
  "app_path": "apps/",
  "enable_custom_domains": true,
  "control_api_hostname": "Admin.Example.com",
  "http_server_options": {
    "use_ssl": true,
    "ssl_certificates": ["` + id1 + `", "certs/server.pem", "/etc/tyk/other.pem"],
    "min_version": 772,
    "max_version": 772,
    "ssl_ciphers": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
    "enable_strict_routes": true
  },
  "security": {
    "private_certificate_encoding_secret": "store-secret",
    "pinned_public_keys": {"pay.example.com": "sha256//AAAA, certs/pin.pem, ` + id2 + `"},
    "certificates": {
      "upstream": {"*.internal": "org1` + id1 + `", "billing:8443": "certs/billing.pem", "*": "/abs/default.pem"},
      "apis": ["` + id2 + `", "certs/ops.pem"]
    }
  },
  "proxy_ssl_insecure_skip_verify": true,
  "proxy_ssl_min_version": 771,
  "unknown_field": {"ignored": true},
  "mtls": {
    "store_dir": "store",
    "client_cas": ["cas/clients.pem"],
    "verify_depth": 2,
    "upstream_cas": ["/etc/ssl/roots.pem"],
    "admin_client_cas": ["cas/admin.pem"],
    "admin_verify_depth": 3
  }
}`

// TestParseGatewayFields: each of Tyk's fields of tyk.conf, and the mtls
// object, lands where it should; relative paths are read from the file's
// directory, IDs and pins are left as written.
func TestParseGatewayFields(t *testing.T) {
	g, err := ParseGateway(filepath.Join("conf", "tyk.conf"), []byte(gatewayConf))
	require.NoError(t, err)
	want := &Gateway{
		File: "conf/tyk.conf", Dir: "conf",
		ListenAddress: "127.0.0.1", ListenPort: 8443, Secret: "s3cret", AppPath: "conf/apps",
		EnableCustomDomains: true, ControlAPIHostname: "admin.example.com",
		UseSSL:             true,
		SSLCertificates:    []string{id1, "conf/certs/server.pem", "/etc/tyk/other.pem"},
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		CipherSuites:       []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		EnableStrictRoutes: true,
		UpstreamCertificates: mtls.Map{"*.internal": "org1" + id1, "billing:8443": "conf/certs/billing.pem",
			"*": "/abs/default.pem"},
		APIClients:                 []string{id2, "conf/certs/ops.pem"},
		PinnedPublicKeys:           mtls.Map{"pay.example.com": "sha256//AAAA,conf/certs/pin.pem, " + id2},
		StoreSecret:                "store-secret",
		ProxySSLInsecureSkipVerify: true,
		ProxySSLMinVersion:         tls.VersionTLS12,
		MTLS: GatewayMTLS{
			StoreDir: "conf/store", ClientCAs: []string{"conf/cas/clients.pem"}, VerifyDepth: 2,
			UpstreamCAs: []string{"/etc/ssl/roots.pem"}, AdminClientCAs: []string{"conf/cas/admin.pem"}, AdminVerifyDepth: 3,
		},
	}
	if d := cmp.Diff(want, g); d != "" {
		t.Errorf("ParseGateway (-want +got):\n%s", d)
	}
}

func TestParseGatewayDefaults(t *testing.T) {
	g, err := ParseGateway("tyk.conf", []byte(`{"secret": "only"}`))
	require.NoError(t, err)
	assert.Equal(t, 8080, g.ListenPort, "Tyk's default port")
	assert.Equal(t, "only", g.StoreSecret, "Tyk falls back to secret for private_certificate_encoding_secret")
	assert.False(t, g.UseSSL)
	assert.Empty(t, g.AppPath)
	assert.Nil(t, g.UpstreamCertificates)
	assert.Contains(t, strings.Join(g.Warnings, "\n"), "tyk.conf: http_server_options.use_ssl: false")

	g, err = ParseGateway("tyk.conf", []byte(`{"listen_port": 0}`))
	require.NoError(t, err)
	assert.Equal(t, 0, g.ListenPort, "an explicit 0 is a port the system picks")
}

func TestStoreSecretFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tyk.conf")
	require.NoError(t, os.WriteFile(path, []byte(`{"security": {"private_certificate_encoding_secret": "from-file"}}`), 0o600))
	t.Setenv(StoreSecretEnv, "")
	g, err := LoadGateway(path)
	require.NoError(t, err)
	assert.Equal(t, "from-file", g.StoreSecret)
	t.Setenv(StoreSecretEnv, "from-env")
	g, err = LoadGateway(path)
	require.NoError(t, err)
	assert.Equal(t, "from-env", g.StoreSecret, "MTLS_STORE_SECRET wins over the file")
}
