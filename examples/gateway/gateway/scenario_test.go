package gateway

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// scenario is a gateway with four APIs on two domains (an API without a
// domain would share every domain, so that none is enforced at the TLS
// level):
//
//	shared.test /billing/  mutual TLS, allows alice; upstream up1 with gw-u1 (API level)
//	shared.test /orders/   mutual TLS, allows bob;   upstream up2 with gw-u2 (gateway level)
//	solo.test   /reports/  mutual TLS, allows alice; upstream up1 with gw-u1b ("127.0.0.1", API level)
//	shared.test /public/   no client certificate;    upstream up2 with gw-u2 (gateway level)
//
// ops is allowed on every API with mutual TLS (security.certificates.apis);
// mallory has a certificate of the clients' CA that no API allows, and
// stranger one of another CA. Each upstream takes only the client
// certificates of its own CA.
type scenario struct {
	*pki
	up1, up2 *upstream
	gw       *running
	conf     string // tyk.conf
	apps     string // the API definitions' directory
	store    string // the certificate store's directory
	secret   string
	apiDefs  map[string]obj
}

func newScenario(t testing.TB, confExtra obj, extraAPIs map[string]obj) *scenario {
	t.Helper()
	p := newPKI(t)
	s := &scenario{pki: p, secret: "admin-secret", apiDefs: map[string]obj{}}
	s.up1, s.up2 = p.upstream("up1"), p.upstream("up2")
	p.clientFor(s.up1, "gw-u1")
	p.clientFor(s.up1, "gw-u1b")
	p.clientFor(s.up2, "gw-u2")
	s.apps = filepath.Join(p.dir, "apps")
	s.store = filepath.Join(p.dir, "store")
	require.NoError(t, os.MkdirAll(s.apps, 0o700))
	conf := obj{
		"listen_address": "127.0.0.1", "listen_port": 0, "secret": s.secret, "app_path": "apps",
		"enable_custom_domains": true,
		"http_server_options":   obj{"use_ssl": true, "ssl_certificates": []string{"gateway-full.pem"}},
		"security": obj{
			"private_certificate_encoding_secret": "store secret",
			"certificates":                        obj{"upstream": obj{s.up2.Host: "gw-u2-full.pem"}, "apis": []string{"ops.pem"}},
		},
		"mtls": obj{"store_dir": "store", "client_cas": []string{"client-ca.pem"},
			"upstream_cas": []string{s.up1.caFile, s.up2.caFile}},
	}
	for k, v := range confExtra {
		conf[k] = v
	}
	s.conf = p.jsonFile("tyk.conf", conf)
	mtlsOn := func(client string, upstream obj) obj {
		e := obj{"use_mutual_tls_auth": true, "client_certificates": []string{"../" + client + ".pem"}}
		if upstream != nil {
			e["upstream_certificates"] = upstream
		}
		return e
	}
	s.apiDefs["billing"] = apiDef("billing", "shared.test", "/billing/", s.up1.URL+"/b", mtlsOn("alice", obj{s.up1.Host: "../gw-u1-full.pem"}))
	s.apiDefs["orders"] = apiDef("orders", "shared.test", "/orders/", s.up2.URL, mtlsOn("bob", nil))
	s.apiDefs["reports"] = apiDef("reports", "solo.test", "/reports/", s.up1.URL, mtlsOn("alice", obj{"127.0.0.1": "../gw-u1b-full.pem"}))
	s.apiDefs["public"] = apiDef("public", "shared.test", "/public/", s.up2.URL, nil)
	for k, v := range extraAPIs {
		s.apiDefs[k] = v
	}
	for name, def := range s.apiDefs {
		s.writeAPI(name, def)
	}
	return s
}

func (s *scenario) writeAPI(name string, def obj) {
	s.jsonFile(filepath.Join("apps", name+".json"), def)
}

func (s *scenario) start(t testing.TB) *running {
	s.gw = startGateway(t, "-conf", s.conf)
	return s.gw
}

// url is https://HOST:PORT/PATH of the gateway.
func (s *scenario) url(host, path string) string {
	return "https://" + host + ":" + s.gw.port + path
}
