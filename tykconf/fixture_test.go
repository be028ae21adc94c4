package tykconf

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/mtlstest"
)

// Store IDs that name no certificate.
const (
	id1 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	id2 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// fixture is a directory of certificate and CA files, and a store with
// one server certificate.
type fixture struct {
	dir        string
	store      *mtls.MemoryStore
	ca         *mtlstest.CA
	serverID   string // in the store: api.example.com, www.example.com
	files      map[string]string
	otherLeaf  *mtlstest.Leaf
	clientLeaf *mtlstest.Leaf
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), store: mtls.NewMemoryStore([]byte("test secret")), ca: mtlstest.MustCA(t, "tykconf CA"), files: map[string]string{}}
	write := func(name string, data []byte) {
		p := filepath.Join(f.dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, data, 0o600))
		f.files[name] = p
	}
	srv := f.ca.MustIssue(t, mtlstest.Options{CommonName: "api", DNSNames: []string{"api.example.com", "www.example.com"}})
	var err error
	f.serverID, err = f.store.Add(context.Background(), srv.PEM())
	require.NoError(t, err)
	def := f.ca.MustIssue(t, mtlstest.Options{CommonName: "default", DNSNames: []string{"default.example.com", "www.example.com"}})
	write("certs/default.pem", def.PEM())
	f.otherLeaf = f.ca.MustIssue(t, mtlstest.Options{CommonName: "other", DNSNames: []string{"other.example.com"}})
	write("certs/other.pem", f.otherLeaf.PEM())
	f.clientLeaf = f.ca.MustIssue(t, mtlstest.Options{CommonName: "client"})
	write("certs/client.pem", f.clientLeaf.CertPEM)
	write("certs/gw.pem", f.clientLeaf.PEM())
	write("cas/clients.pem", f.ca.CertPEM)
	write("cas/admin.pem", f.ca.CertPEM)
	write("cas/garbage.pem", []byte("not PEM"))
	return f
}

func (f *fixture) gateway(t *testing.T, js string) *Gateway {
	t.Helper()
	g, err := ParseGateway(filepath.Join(f.dir, "tyk.conf"), []byte(js))
	require.NoError(t, err)
	return g
}

func (f *fixture) api(t *testing.T, name, js string) *API {
	t.Helper()
	a, err := ParseAPI(filepath.Join(f.dir, "apps", name), []byte(js))
	require.NoError(t, err)
	return a
}
