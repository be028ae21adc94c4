package mtls

// nginx as the upstream: the certificate the library maps is the one nginx
// verifies (ssl_verify_client on), per server block, through the
// RoundTripper a proxy would use.

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls/mtlstest"
)

// ngxBlock is one server block of the test's nginx.
type ngxBlock struct {
	name       string // what it answers as "block="
	serverName string // "" for the default server
	server     *mtlstest.Leaf
	clientCAs  []byte // PEM of the CAs it verifies client certificates against
	depth      int    // ssl_verify_depth
}

// ngx is an nginx serving the blocks on 127.0.0.1:port.
type ngx struct {
	port int
	proc *peerProc
}

// ngxStart writes the configuration of blocks into a temporary directory and
// runs nginx in the foreground, in one process. It retries on another port
// when the one it picked was taken meanwhile.
func ngxStart(t *testing.T, bin string, blocks []ngxBlock) *ngx {
	t.Helper()
	dir := t.TempDir()
	var probe *ngxBlock // the default server, which a probe without SNI reaches
	for i := range blocks {
		b := &blocks[i]
		writeFile(t, dir, b.name+"-server.pem", b.server.CertPEM)
		writeFile(t, dir, b.name+"-server.key", b.server.KeyPEM)
		writeFile(t, dir, b.name+"-clients.pem", b.clientCAs)
		if b.serverName == "" {
			probe = b
		}
	}
	require.NotNil(t, probe, "the configuration needs a default server")
	for attempt := 1; ; attempt++ {
		port := peerFreePort(t)
		conf := filepath.Join(dir, "nginx.conf")
		require.NoError(t, os.WriteFile(conf, []byte(ngxConfig(dir, port, blocks)), 0o600))
		// -e: errors before the configuration is read go to stderr too,
		// not to the compiled-in log path.
		p := peerStart(t, "nginx", dir, bin, "-e", "stderr", "-p", dir+"/", "-c", conf)
		addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
		err := peerWaitTLS(p, addr, "", probe.server.Cert)
		if err == nil {
			return &ngx{port: port, proc: p}
		}
		p.stop()
		if attempt < 4 && strings.Contains(p.stderr.String(), "Address already in use") {
			t.Logf("nginx: port %d was taken, trying another", port)
			continue
		}
		p.log(t)
		t.Fatalf("nginx did not start: %v", err)
	}
}

// ngxConfig is a self-contained nginx.conf: every path it writes (pid,
// lock, temporary files, logs) is in dir, and the error log is stderr.
// ngxPreamble writes the start of a single-process nginx config whose
// files live in dir, up to the inside of its http block.
func ngxPreamble(b *strings.Builder, dir string) {
	if os.Geteuid() == 0 {
		// Single-process nginx never switches user, but as root it would
		// otherwise chown its temporary directories to "nobody".
		b.WriteString("user root root;\n")
	}
	fmt.Fprintf(b, `daemon off;
master_process off;
worker_processes 1;
error_log stderr info;
pid %[1]s/nginx.pid;
lock_file %[1]s/nginx.lock;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	default_type text/plain;
`, dir)
}

// Each location answers with what nginx verified of the client.
func ngxConfig(dir string, port int, blocks []ngxBlock) string {
	var b strings.Builder
	ngxPreamble(&b, dir)
	b.WriteString("\tssl_protocols TLSv1.2 TLSv1.3;\n")
	for _, s := range blocks {
		listen, name := "ssl", s.serverName
		if name == "" {
			listen, name = "ssl default_server", `""`
		}
		fmt.Fprintf(&b, `	server {
		listen 127.0.0.1:%[1]d %[2]s;
		server_name %[3]s;
		ssl_certificate %[4]s/%[5]s-server.pem;
		ssl_certificate_key %[4]s/%[5]s-server.key;
		ssl_client_certificate %[4]s/%[5]s-clients.pem;
		ssl_verify_client on;
		ssl_verify_depth %[6]d;
		location / {
			return 200 "block=%[5]s\nverify=$ssl_client_verify\nsubject=$ssl_client_s_dn\nsha1=$ssl_client_fingerprint\nsni=$ssl_server_name\nreused=$ssl_session_reused\n";
		}
	}
`, port, listen, name, dir, s.name, s.depth)
	}
	b.WriteString("}\n")
	return b.String()
}

// ngxReply is what nginx answered to a request through the library.
type ngxReply struct {
	status int
	body   string
	server *x509.Certificate // the leaf nginx presented
}

// field returns the value of "key=" in a 200 body.
func (r ngxReply) field(key string) string {
	for line := range strings.SplitSeq(r.body, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return "<no " + key + ">"
}

func ngxGet(rt http.RoundTripper, url string) (ngxReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ngxReply{}, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return ngxReply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return ngxReply{}, err
	}
	r := ngxReply{status: resp.StatusCode, body: string(body)}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.server = resp.TLS.PeerCertificates[0]
	}
	return r, nil
}

// requireVerified checks that nginx's block answered 200 after verifying
// exactly client, and presented server.
func requireVerified(t *testing.T, r ngxReply, block string, client, server *mtlstest.Leaf) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "nginx refused the request:\n%s", r.body)
	assert.Equal(t, block, r.field("block"), "the request reached another server block")
	assert.Equal(t, "SUCCESS", r.field("verify"), "nginx's $ssl_client_verify")
	assert.Equal(t, "CN="+client.Cert.Subject.CommonName+",O=mtlstest", r.field("subject"), "nginx's $ssl_client_s_dn")
	sum := sha1.Sum(client.Cert.Raw)
	assert.Equal(t, hex.EncodeToString(sum[:]), r.field("sha1"), "nginx's $ssl_client_fingerprint (SHA-1 of the leaf)")
	require.NotNil(t, r.server, "no server certificate in resp.TLS")
	assert.True(t, r.server.Equal(server.Cert), "nginx presented %q, not block %s's certificate %q",
		r.server.Subject, block, server.Cert.Subject)
}

// requireCertificateError checks nginx's refusal of a client certificate
// it could not verify: the handshake completes and nginx answers 400 "The
// SSL certificate error", which is neither success nor "No required SSL
// certificate was sent".
func requireCertificateError(t *testing.T, r ngxReply) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, r.status, "nginx accepted a certificate it should refuse:\n%s", r.body)
	require.Contains(t, r.body, "The SSL certificate error", "nginx refused for another reason")
}

// TestNginxUpstreamVerifiesTheMappedCertificatePerServerBlock runs nginx
// with three server blocks on one port, each verifying client certificates
// against its CA file: the default server (reached by an IP literal, so with
// no SNI), api.test and strict.test (reached by SNI). Through the library's
// RoundTripper each block sees exactly the certificate mapped to its host
// pattern and presents its own server certificate; a certificate from
// another CA, and a chain deeper than strict.test's ssl_verify_depth, are
// refused by nginx (400), and told apart from success; a wrong pin on one
// block fails with ErrPinMismatch while the other block, in the same
// selector, still answers; the key that error names is the pin curl
// --pinnedpubkey accepts for that block, and the library too.
func TestNginxUpstreamVerifiesTheMappedCertificatePerServerBlock(t *testing.T) {
	bin := requirePeer(t, "nginx")

	srvCA := newCA(t, "nginx servers")
	defaultSrv := serverLeaf(t, srvCA, "nginx default server") // 127.0.0.1
	apiSrv := issue(t, srvCA, mtlstest.Options{CommonName: "nginx api server", DNSNames: []string{"api.test", "strict.test"}})

	// The default block trusts its own CA; api.test and strict.test trust
	// another root, whose client certificate comes through two
	// intermediates: nginx's CA file holds only the root, so the library
	// must send the chain, and depth 2 admits it where depth 1 does not.
	defaultCA := newCA(t, "nginx default clients")
	apiRoot := newCA(t, "nginx api clients root")
	inter1, err := apiRoot.Intermediate("nginx api clients intermediate 1")
	require.NoError(t, err)
	inter2, err := inter1.Intermediate("nginx api clients intermediate 2")
	require.NoError(t, err)
	defaultClient := clientLeaf(t, defaultCA, "default-client")
	apiClient := clientLeaf(t, inter2, "api-client")
	rogue := clientLeaf(t, newCA(t, "nobody nginx trusts"), "rogue-client")

	n := ngxStart(t, bin, []ngxBlock{
		{name: "default", server: defaultSrv, clientCAs: defaultCA.CertPEM, depth: 1},
		{name: "api", serverName: "api.test", server: apiSrv, clientCAs: apiRoot.CertPEM, depth: 2},
		{name: "strict", serverName: "strict.test", server: apiSrv, clientCAs: apiRoot.CertPEM, depth: 1},
	})
	ipURL := fmt.Sprintf("https://127.0.0.1:%d/", n.port)
	apiURL := fmt.Sprintf("https://api.test:%d/", n.port)
	strictURL := fmt.Sprintf("https://strict.test:%d/", n.port)

	// *.test names are dialled on loopback; the request's host stays the
	// TLS server name.
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = nil
	base.ResponseHeaderTimeout = waitFor
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(host, ".test") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dialer.DialContext(ctx, network, addr)
	}

	store := newStore(t)
	apiID := add(t, store, apiClient.PEM())
	rogueID := add(t, store, rogue.PEM())
	// The default block's certificate comes from a file: another kind of
	// map value, on another pattern.
	defaultFile := writeFile(t, t.TempDir(), "default-client.pem", defaultClient.PEM())
	gw := newSelector(t, store, Policy{
		Certificates: Map{"*.test": apiID, "127.0.0.1": defaultFile},
		RootCAs:      srvCA.Pool,
	}, WithBaseTransport(base))
	rt := gw.RoundTripper()

	t.Run("each block sees its own certificate", func(t *testing.T) {
		for range 2 { // the second round goes over pooled connections
			r, err := ngxGet(rt, apiURL)
			require.NoError(t, err)
			requireVerified(t, r, "api", apiClient, apiSrv)
			assert.Equal(t, "api.test", r.field("sni"))

			r, err = ngxGet(rt, ipURL)
			require.NoError(t, err)
			requireVerified(t, r, "default", defaultClient, defaultSrv)
			assert.Empty(t, r.field("sni"), "an IP literal URL must carry no SNI")
		}
	})

	t.Run("ssl_verify_depth 1 refuses the two-intermediate chain", func(t *testing.T) {
		r, err := ngxGet(rt, strictURL)
		require.NoError(t, err)
		requireCertificateError(t, r)
		// The same certificate still passes api.test's depth 2.
		r, err = ngxGet(rt, apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", apiClient, apiSrv)
	})

	t.Run("a certificate from another CA is refused", func(t *testing.T) {
		api := forAPI(t, gw, Policy{Certificates: Map{"api.test": rogueID}})
		r, err := ngxGet(api.RoundTripper(), apiURL)
		require.NoError(t, err, "nginx completes the handshake and refuses over HTTP")
		requireCertificateError(t, r)
		// The API's mapping does not reach the gateway's hosts, nor the
		// API's other hosts.
		r, err = ngxGet(rt, apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", apiClient, apiSrv)
		r, err = ngxGet(api.RoundTripper(), ipURL)
		require.NoError(t, err)
		requireVerified(t, r, "default", defaultClient, defaultSrv)
	})

	t.Run("a wrong pin fails one block only", func(t *testing.T) {
		// Both hosts pinned to the default server's key: right for
		// 127.0.0.1, wrong for api.test.
		pins := forAPI(t, gw, Policy{PinnedPublicKeys: Map{
			"api.test":  pinFor(defaultSrv.Cert),
			"127.0.0.1": pinFor(defaultSrv.Cert),
		}})
		prt := pins.RoundTripper()
		r, err := ngxGet(prt, ipURL)
		require.NoError(t, err)
		requireVerified(t, r, "default", defaultClient, defaultSrv)

		_, err = ngxGet(prt, apiURL)
		require.ErrorIs(t, err, ErrPinMismatch)
		assert.Contains(t, err.Error(), fmt.Sprintf("api.test:%d", n.port), "the error names the host")
		assert.Contains(t, err.Error(), pinFor(apiSrv.Cert), "the error names the key api.test presented")

		r, err = ngxGet(prt, ipURL)
		require.NoError(t, err, "a pin mismatch on api.test must not affect 127.0.0.1")
		requireVerified(t, r, "default", defaultClient, defaultSrv)
		// The gateway, which pins nothing, still reaches api.test.
		r, err = ngxGet(rt, apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", apiClient, apiSrv)
	})

	t.Run("a new certificate is never resumed from an old session", func(t *testing.T) {
		sel := newSelector(t, store, Policy{Certificates: Map{"*.test": apiID}, RootCAs: srvCA.Pool},
			WithBaseTransport(base))
		srt := sel.RoundTripper()
		r, err := ngxGet(srt, apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", apiClient, apiSrv)
		// nginx resumes the identity's session on a new connection: what
		// follows would prove nothing otherwise.
		closeIdle(t, srt)
		r, err = ngxGet(srt, apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", apiClient, apiSrv)
		require.Equal(t, "r", r.field("reused"), "nginx did not resume the session of an unchanged identity")

		// Rotation: a resumed session would carry the old certificate to
		// nginx, whatever GetClientCertificate now says.
		next := clientLeaf(t, inter2, "api-client-next")
		require.NoError(t, sel.Update(Policy{Certificates: Map{"*.test": add(t, store, next.PEM())}, RootCAs: srvCA.Pool}))
		closeIdle(t, srt)
		r, err = ngxGet(srt, apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", next, apiSrv)
		assert.Equal(t, ".", r.field("reused"), "the new certificate's first connection resumed a session")
	})

	t.Run("a longer chain added to the store reaches nginx", func(t *testing.T) {
		leaf := clientLeaf(t, inter2, "api-client-chain")
		var certs []*pem.Block // leaf, intermediate 2, intermediate 1
		for rest := leaf.CertPEM; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			certs = append(certs, b)
		}
		require.Len(t, certs, 3)
		short := append(append(pem.EncodeToMemory(certs[0]), pem.EncodeToMemory(certs[1])...), leaf.KeyPEM...)
		id := add(t, store, short)
		sel := newSelector(t, store, Policy{Certificates: Map{"*.test": id}, RootCAs: srvCA.Pool},
			WithBaseTransport(base))
		r, err := ngxGet(sel.RoundTripper(), apiURL)
		require.NoError(t, err)
		requireCertificateError(t, r) // nginx cannot reach its root without intermediate 1

		// The same leaf with its whole chain: the store keeps the longer
		// chain under the same ID, and the next request presents it.
		require.Equal(t, id, add(t, store, leaf.PEM()))
		r, err = ngxGet(sel.RoundTripper(), apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", leaf, apiSrv)
		assert.Equal(t, ".", r.field("reused"), "the longer chain's first connection resumed a session")
	})

	t.Run("curl takes the pin the library names for nginx", func(t *testing.T) {
		curlBin := requirePeer(t, "curl")
		pins := forAPI(t, gw, Policy{PinnedPublicKeys: Map{"api.test": pinFor(defaultSrv.Cert)}})
		_, err := ngxGet(pins.RoundTripper(), apiURL)
		require.ErrorIs(t, err, ErrPinMismatch)
		named := curlPinInError.FindString(err.Error())
		require.NotEmpty(t, named, "the error names no sha256// key: %v", err)

		dir := t.TempDir()
		curl := func(pin string) (string, string, int) {
			return peerRun(t, curlBin, "-q", "--silent", "--show-error", "--noproxy", "*", "--max-time", "10",
				"--resolve", fmt.Sprintf("api.test:%d:127.0.0.1", n.port),
				"--pinnedpubkey", pin,
				"--cacert", writeFile(t, dir, "ca.pem", srvCA.CertPEM),
				"--cert", writeFile(t, dir, "client.pem", apiClient.CertPEM),
				"--key", writeFile(t, dir, "client.key", apiClient.KeyPEM),
				apiURL)
		}
		body, stderr, code := curl(named)
		require.Zero(t, code, "curl refused the pin %s the library named: %s", named, stderr)
		viaCurl := ngxReply{body: body}
		assert.Equal(t, "api", viaCurl.field("block"))
		assert.Equal(t, "SUCCESS", viaCurl.field("verify"))
		assert.Equal(t, "CN=api-client,O=mtlstest", viaCurl.field("subject"))
		_, stderr, code = curl(pinFor(defaultSrv.Cert))
		require.Equal(t, curlExitPinMismatch, code, "curl took the pin the library refused: %s", stderr)

		// The library takes the pin it named.
		require.NoError(t, pins.Update(Policy{PinnedPublicKeys: Map{"api.test": named}}))
		r, err := ngxGet(pins.RoundTripper(), apiURL)
		require.NoError(t, err)
		requireVerified(t, r, "api", apiClient, apiSrv)
	})
}
