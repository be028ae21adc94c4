package tykconf

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls"
)

// TestSelectors: the gateway's and an API's upstream policies, and their
// errors named by file and field.
func TestSelectors(t *testing.T) {
	f := newFixture(t)
	g := f.gateway(t, `{"security": {"certificates": {"upstream": {"*.internal": "certs/gw.pem"}},
		"pinned_public_keys": {"pay.internal": "`+f.otherLeaf.Pin()+`"}},
		"proxy_ssl_insecure_skip_verify": true, "mtls": {"upstream_cas": ["cas/clients.pem"]}}`)
	p, err := g.Policy()
	require.NoError(t, err)
	assert.True(t, p.InsecureSkipVerify)
	assert.NotNil(t, p.RootCAs)
	sel, err := g.NewSelector(f.store)
	require.NoError(t, err)
	defer sel.Close()
	res, err := sel.Explain("api.internal")
	require.NoError(t, err)
	assert.Equal(t, f.clientLeaf.ID(), res.Certificate.ID)

	a := f.api(t, "a.json", `{"api_id": "a", "active": true, "proxy": {"listen_path": "/a/", "target_url": "https://api.internal",
		"transport": {"ssl_insecure_skip_verify": true}}, "upstream_certificates": {"api.internal": "../certs/other.pem"}}`)
	ap, err := a.Policy()
	require.NoError(t, err)
	assert.True(t, ap.InsecureSkipVerify)
	assert.Nil(t, ap.RootCAs, "inherits the gateway's")
	as, err := a.ForAPI(sel)
	require.NoError(t, err)
	res, err = as.Explain("api.internal")
	require.NoError(t, err)
	assert.Equal(t, f.otherLeaf.ID(), res.Certificate.ID, "the API level wins")

	bad := f.api(t, "b.json", `{"api_id": "b", "active": true, "proxy": {"listen_path": "/b/", "target_url": "https://x"},
		"upstream_certificates": {"x": "../certs/none.pem", "y": "../certs/client.pem"}, "pinned_public_keys": {"z": "`+id2+`"}}`)
	_, err = bad.ForAPI(sel)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		filepath.Join(f.dir, "apps", "b.json") + `: upstream_certificates["x"]: `,
		filepath.Join(f.dir, "apps", "b.json") + `: upstream_certificates["y"]: `,
		filepath.Join(f.dir, "apps", "b.json") + `: pinned_public_keys["z"]: `,
	} {
		assert.Contains(t, msg, want)
	}
	assert.True(t, errors.Is(err, mtls.ErrNotFound))
	assert.True(t, errors.Is(err, mtls.ErrNoPrivateKey))
	require.Error(t, bad.Update(as))
	res, err = as.Explain("api.internal")
	require.NoError(t, err)
	assert.Equal(t, f.otherLeaf.ID(), res.Certificate.ID, "a refused Update keeps the old policy")

	g2 := f.gateway(t, `{"security": {"certificates": {"upstream": {"a": "certs/none.pem"}}}}`)
	_, err = g2.NewSelector(f.store)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tyk.conf: security.certificates.upstream["a"]: `)
	g3 := f.gateway(t, `{"mtls": {"upstream_cas": ["cas/garbage.pem"]}}`)
	_, err = g3.NewSelector(f.store)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tyk.conf: mtls.upstream_cas[0]: ")
	assert.True(t, strings.Contains(err.Error(), "holds no PEM certificate"))
}
