package mtls

// Real peers as clients of a Server (semantics §7): curl, openssl s_client
// and nginx (proxy_pass https:// with a client certificate) reach a Server
// on loopback, each with, without, and with the wrong client certificate;
// each run finds which server certificate it was given and whether the
// handshake succeeded. nginx as a server also checks that VerifyDepth
// counts as its ssl_verify_depth does. Each peer goes through requirePeer.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mtlsgo/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// srvPeerSetup is a Server with:
//   - "a.test": certificate "a server", owned by API "own" (mutual TLS,
//     the clients' CA, allowlist: good): the TLS level enforces it;
//   - "shared.test": certificate "a server", APIs "s1" (allows good) and
//     "s2" (allows notAllowed): the HTTP level decides;
//   - "*": certificate "default server" (127.0.0.1), for clients that send
//     no SNI.
type srvPeerSetup struct {
	e                *srvEnv
	c                *srvClients
	srvCA            *mtlstest.CA
	serverA, deflt   *mtlstest.Leaf
	dir              string // PEM files of everything above
	caFile           string // the server CA, for the peers' verification
	ownPolicy        ServerPolicy
	goodID, notAllID string
}

func srvPeerStart(t *testing.T) *srvPeerSetup {
	t.Helper()
	ps := &srvPeerSetup{srvCA: newCA(t, "srv peers server CA"), c: srvNewClients(t), dir: t.TempDir()}
	ps.serverA = srvServerLeaf(t, ps.srvCA, "a server", "a.test", "shared.test")
	ps.deflt = srvServerLeaf(t, ps.srvCA, "default server")
	store := newStore(t)
	ps.goodID, ps.notAllID = add(t, store, ps.c.good.CertPEM), add(t, store, ps.c.notAllowed.CertPEM)
	aID := add(t, store, ps.serverA.PEM())
	ps.ownPolicy = ServerPolicy{
		Certificates: Map{"a.test": aID, "shared.test": aID, "*": add(t, store, ps.deflt.PEM())},
		APIs: []APIPolicy{
			{Name: "own", Domain: "a.test", MutualTLS: true, ClientCAs: ps.c.ca.Pool, AllowedClients: []string{ps.goodID}},
			{Name: "s1", Domain: "shared.test", MutualTLS: true, ClientCAs: ps.c.ca.Pool, AllowedClients: []string{ps.goodID}},
			{Name: "s2", Domain: "shared.test", MutualTLS: true, ClientCAs: ps.c.ca.Pool, AllowedClients: []string{ps.notAllID}},
		},
	}
	ps.e = srvNew(t, store, ps.ownPolicy, "own", "s1", "s2")
	ps.caFile = writeFile(t, ps.dir, "server-ca.pem", ps.srvCA.CertPEM)
	for name, l := range map[string]*mtlstest.Leaf{"good": ps.c.good, "notallowed": ps.c.notAllowed, "other": ps.c.fromOther,
		"expired": ps.c.expired, "deep": ps.c.viaInter2} {
		writeFile(t, ps.dir, name+".pem", l.CertPEM)
		writeFile(t, ps.dir, name+".key", l.KeyPEM)
	}
	return ps
}

func (ps *srvPeerSetup) file(name string) string { return filepath.Join(ps.dir, name) }

// srvRunInput runs bin with input on its stdin, bounded by waitFor.
func srvRunInput(t testing.TB, input, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(input)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: did not finish within %v\nstdout: %s\nstderr: %s", cmd, waitFor, out.String(), errOut.String())
	}
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out.String(), errOut.String(), code
}

// srvFirstCert returns the first PEM certificate in s after marker, or nil.
func srvFirstCert(s, marker string) *x509.Certificate {
	_, rest, ok := strings.Cut(s, marker)
	if !ok {
		return nil
	}
	for {
		var b *pem.Block
		b, r := pem.Decode([]byte(rest))
		if b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
		rest = string(r)
	}
}

// srvBodyField returns key= of a srvReport body found anywhere in s.
func srvBodyField(s, key string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=(.*?)\r?$`).FindStringSubmatch(s)
	if m == nil {
		return "<no " + key + ">"
	}
	return m[1]
}

// TestServerPeersCurl: curl as a client, with --resolve for the SNI.
func TestServerPeersCurl(t *testing.T) {
	bin := requirePeer(t, "curl")
	ps := srvPeerStart(t)
	e, port := ps.e, strconv.Itoa(ps.e.port)
	// curl prints the server's chain (%{certs}) and the status after the body.
	curl := func(url, cert string, extra ...string) (body, certs string, status, code int, stderr string) {
		t.Helper()
		args := []string{"-q", "--silent", "--show-error", "--noproxy", "*", "--max-time", "10",
			"--cacert", ps.caFile, "--resolve", "a.test:" + port + ":127.0.0.1", "--resolve", "shared.test:" + port + ":127.0.0.1",
			"--write-out", "\n@@status=%{http_code}\n@@certs\n%{certs}"}
		if cert != "" {
			args = append(args, "--cert", ps.file(cert+".pem"), "--key", ps.file(cert+".key"))
		}
		args = append(append(args, extra...), url)
		out, stderr, code := peerRun(t, bin, args...)
		body, meta, _ := strings.Cut(out, "\n@@status=")
		st, certs, _ := strings.Cut(meta, "\n@@certs\n")
		status, _ = strconv.Atoi(strings.TrimSpace(st))
		return body, certs, status, code, stderr
	}
	presented := func(certs string) string {
		c := srvFirstCert(certs, "")
		if c == nil {
			return "<none>"
		}
		return c.Subject.CommonName
	}
	aURL := "https://a.test:" + port + "/api/own"

	t.Run("with the allowed certificate", func(t *testing.T) {
		body, certs, status, code, stderr := curl(aURL, "good")
		require.Zero(t, code, "curl: %s", stderr)
		require.Equal(t, 200, status, body)
		assert.Equal(t, "a server", presented(certs))
		assert.Equal(t, "a.test", srvBodyField(body, "sni"))
		assert.Equal(t, ps.c.good.ID(), srvBodyField(body, "id"))
		assert.Equal(t, "true", srvBodyField(body, "verified"))
	})

	for _, tc := range []struct {
		name, cert string
		leaf       *mtlstest.Leaf
		why        string
	}{
		{"without a certificate", "", nil, "no client certificate"},
		{"with a certificate of another CA", "other", ps.c.fromOther, "does not chain"},
		{"with a certificate not allowed", "notallowed", ps.c.notAllowed, "not in the allowlist"},
		{"with an expired certificate", "expired", ps.c.expired, "valid from"},
		{"with a chain longer than the depth", "deep", ps.c.viaInter2, "VerifyDepth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srvAll(e.events, ClientRefused))
			body, _, status, code, stderr := curl(aURL, tc.cert)
			require.NotZero(t, code, "curl got through the owned domain (status %d): %s", status, body)
			t.Logf("curl exit %d: %s", code, strings.TrimSpace(stderr))
			ev := srvRefusedEvent(t, e.events, before, tc.leaf, tc.why)
			assert.Equal(t, "own", ev.API)
		})
	}

	t.Run("shared domain: the middleware decides", func(t *testing.T) {
		s1, s2 := "https://shared.test:"+port+"/api/s1", "https://shared.test:"+port+"/api/s2"
		body, _, status, code, stderr := curl(s1, "")
		require.Zero(t, code, "the handshake must not require a certificate on a shared domain: %s", stderr)
		assert.Equal(t, 403, status)
		assert.Contains(t, body, "no client certificate")
		body, _, status, code, _ = curl(s1, "good")
		require.Zero(t, code)
		assert.Equal(t, 200, status, body)
		body, _, status, code, _ = curl(s2, "good")
		require.Zero(t, code)
		assert.Equal(t, 403, status, body)
		assert.Contains(t, body, "not in the allowlist")
		_, _, status, code, _ = curl(s1, "other")
		require.Zero(t, code)
		assert.Equal(t, 403, status)
	})

	t.Run("no SNI: the default certificate", func(t *testing.T) {
		body, certs, status, code, stderr := curl("https://127.0.0.1:"+port+"/", "")
		require.Zero(t, code, "curl: %s", stderr)
		require.Equal(t, 200, status, body)
		assert.Equal(t, "default server", presented(certs))
		assert.Equal(t, "", srvBodyField(body, "sni"))
	})

	t.Run("Host and SNI disagree: 421", func(t *testing.T) {
		body, _, status, code, stderr := curl(aURL, "good", "--header", "Host: shared.test")
		require.Zero(t, code, "curl: %s", stderr)
		assert.Equal(t, 421, status, body)
	})
}

// srvSClient runs openssl s_client against the server with args, sends an
// HTTP request for path with Host host, and returns its output.
func srvSClient(t *testing.T, bin string, ps *srvPeerSetup, path, host string, args ...string) (string, int) {
	t.Helper()
	all := append([]string{"s_client", "-connect", ps.e.addr, "-CAfile", ps.caFile, "-ign_eof"}, args...)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"
	out, stderr, code := srvRunInput(t, req, bin, all...)
	return out + "\n--- stderr ---\n" + stderr, code
}

// TestServerPeersOpenSSL: openssl s_client with -cert, -servername and
// without SNI: which certificate the server presented, and whether the
// handshake (and the request after it) succeeded.
func TestServerPeersOpenSSL(t *testing.T) {
	bin := requirePeer(t, "openssl")
	ps := srvPeerStart(t)
	e := ps.e
	cert := func(name string) []string {
		return []string{"-cert", ps.file(name + ".pem"), "-key", ps.file(name + ".key")}
	}
	server := func(out string) string {
		c := srvFirstCert(out, "Server certificate")
		if c == nil {
			return "<none>"
		}
		return c.Subject.CommonName
	}

	for _, v := range []string{"-tls1_3", "-tls1_2"} {
		t.Run(v, func(t *testing.T) {
			t.Run("-servername with the allowed -cert", func(t *testing.T) {
				out, _ := srvSClient(t, bin, ps, "/api/own", "a.test", append(cert("good"), "-servername", "a.test", v)...)
				assert.Equal(t, "a server", server(out), "s_client output:\n%s", out)
				assert.Contains(t, out, "Verify return code: 0 (ok)")
				require.Contains(t, out, "HTTP/1.1 200", "s_client output:\n%s", out)
				assert.Equal(t, ps.c.good.ID(), srvBodyField(out, "id"))
			})
			for _, tc := range []struct {
				name string
				cert string
				leaf *mtlstest.Leaf
				why  string
			}{
				{"without -cert", "", nil, "no client certificate"},
				{"with the -cert of another CA", "other", ps.c.fromOther, "does not chain"},
				{"with a -cert not allowed", "notallowed", ps.c.notAllowed, "not in the allowlist"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					args := []string{"-servername", "a.test", v}
					if tc.cert != "" {
						args = append(args, cert(tc.cert)...)
					}
					before := len(srvAll(e.events, ClientRefused))
					out, _ := srvSClient(t, bin, ps, "/api/own", "a.test", args...)
					assert.Equal(t, "a server", server(out), "the server presents its certificate before it sees the client's")
					assert.NotContains(t, out, "HTTP/1.1 200", "s_client got through:\n%s", out)
					assert.Regexp(t, `alert|error`, out, "s_client reports no failure:\n%s", out)
					srvRefusedEvent(t, e.events, before, tc.leaf, tc.why)
				})
			}
			t.Run("-noservername: the default certificate", func(t *testing.T) {
				out, _ := srvSClient(t, bin, ps, "/", "127.0.0.1", "-noservername", v)
				assert.Equal(t, "default server", server(out), "s_client output:\n%s", out)
				require.Contains(t, out, "HTTP/1.1 200", "s_client output:\n%s", out)
				assert.Equal(t, "", srvBodyField(out, "sni"))
			})
			t.Run("-servername of a shared domain, without -cert", func(t *testing.T) {
				out, _ := srvSClient(t, bin, ps, "/api/s1", "shared.test", "-servername", "shared.test", v)
				require.Contains(t, out, "HTTP/1.1 403", "the handshake must succeed and the middleware refuse:\n%s", out)
				out, _ = srvSClient(t, bin, ps, "/api/s1", "shared.test", append(cert("good"), "-servername", "shared.test", v)...)
				require.Contains(t, out, "HTTP/1.1 200", "s_client output:\n%s", out)
			})
		})
	}
}

// srvNginxClient is an nginx that proxies to the Server: each location
// proxies to it with a client certificate (or none) and an SNI.
type srvNginxClient struct {
	port int
	proc *peerProc
}

type srvNginxLocation struct {
	path     string // "/good/"
	upstream string // the URI on the Server: "/api/own"
	cert     string // file stem in dir, "" for none
	sni      string // proxy_ssl_name
	host     string // Host sent upstream; "": nginx's default ($proxy_host)
	tlsMax   string // proxy_ssl_protocols; "": TLSv1.2 TLSv1.3
	// reuse keeps proxy_ssl_session_reuse on. nginx keeps one session per
	// upstream address, shared by every location that proxies to it: a
	// location without a certificate would resume the session another
	// location made with one.
	reuse bool
}

func srvNginxStart(t *testing.T, bin, dir string, serverPort int, caFile string, locs []srvNginxLocation) *srvNginxClient {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := peerFreePort(t)
		var b strings.Builder
		ngxPreamble(&b, dir)
		fmt.Fprintf(&b, `	server {
		listen 127.0.0.1:%d;
		location = /ready { return 200 "ready\n"; }
`, port)
		for _, l := range locs {
			protocols := l.tlsMax
			if protocols == "" {
				protocols = "TLSv1.2 TLSv1.3"
			}
			fmt.Fprintf(&b, "\t\tlocation = %s {\n\t\t\tproxy_pass https://127.0.0.1:%d%s;\n", l.path, serverPort, l.upstream)
			fmt.Fprintf(&b, "\t\t\tproxy_ssl_server_name on;\n\t\t\tproxy_ssl_name %s;\n", l.sni)
			fmt.Fprintf(&b, "\t\t\tproxy_ssl_trusted_certificate %s;\n\t\t\tproxy_ssl_verify on;\n\t\t\tproxy_ssl_protocols %s;\n", caFile, protocols)
			if l.cert != "" {
				fmt.Fprintf(&b, "\t\t\tproxy_ssl_certificate %s/%s.pem;\n\t\t\tproxy_ssl_certificate_key %s/%s.key;\n", dir, l.cert, dir, l.cert)
			}
			if l.host != "" {
				fmt.Fprintf(&b, "\t\t\tproxy_set_header Host %s;\n", l.host)
			}
			if !l.reuse {
				b.WriteString("\t\t\tproxy_ssl_session_reuse off;\n")
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n}\n")
		conf := filepath.Join(dir, "nginx.conf")
		require.NoError(t, os.WriteFile(conf, []byte(b.String()), 0o600))
		p := peerStart(t, "nginx", dir, bin, "-e", "stderr", "-p", dir+"/", "-c", conf)
		n := &srvNginxClient{port: port, proc: p}
		err := n.waitReady()
		if err == nil {
			return n
		}
		p.stop()
		if attempt < 4 && strings.Contains(p.stderr.String(), "Address already in use") {
			continue
		}
		p.log(t)
		t.Fatalf("nginx did not start: %v", err)
	}
}

func (n *srvNginxClient) waitReady() error {
	deadline := time.Now().Add(waitFor)
	for {
		if n.proc.exited() {
			return fmt.Errorf("nginx: %w (%s)", errPeerExited, n.proc.exitStatus())
		}
		status, body, err := n.get("/ready")
		if err == nil && status == 200 && strings.TrimSpace(body) == "ready" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx is not serving on port %d after %v: %v", n.port, waitFor, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *srvNginxClient) get(path string) (int, string, error) {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(n.port)+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestServerPeersNginxAsClient: nginx proxies to the Server with
// proxy_ssl_certificate, proxy_ssl_server_name on and proxy_ssl_name: the
// allowed certificate gets through with its SNI, none and the wrong one
// are refused at the handshake (nginx answers 502), a Host that is not the
// SNI gets 421, and a client removed by Update is refused although nginx
// holds a session it could resume.
func TestServerPeersNginxAsClient(t *testing.T) {
	bin := requirePeer(t, "nginx")
	ps := srvPeerStart(t)
	e := ps.e
	n := srvNginxStart(t, bin, ps.dir, e.port, ps.caFile, []srvNginxLocation{
		{path: "/good", upstream: "/api/own", cert: "good", sni: "a.test", host: "a.test", reuse: true},
		{path: "/good12", upstream: "/api/own", cert: "good", sni: "a.test", host: "a.test", tlsMax: "TLSv1.2", reuse: true},
		{path: "/none", upstream: "/api/own", sni: "a.test", host: "a.test"},
		{path: "/other", upstream: "/api/own", cert: "other", sni: "a.test", host: "a.test"},
		{path: "/notallowed", upstream: "/api/own", cert: "notallowed", sni: "a.test", host: "a.test"},
		{path: "/nohost", upstream: "/api/own", cert: "good", sni: "a.test"},
		{path: "/shared-s1", upstream: "/api/s1", cert: "good", sni: "shared.test", host: "shared.test"},
		{path: "/shared-s2", upstream: "/api/s2", cert: "good", sni: "shared.test", host: "shared.test"},
	})

	t.Run("the allowed certificate, with its SNI", func(t *testing.T) {
		status, body, err := n.get("/good")
		require.NoError(t, err)
		require.Equal(t, 200, status, body)
		assert.Equal(t, "a.test", srvBodyField(body, "sni"))
		assert.Equal(t, ps.c.good.ID(), srvBodyField(body, "id"))
		assert.Equal(t, "true", srvBodyField(body, "verified"))
	})

	for _, tc := range []struct {
		path string
		leaf *mtlstest.Leaf
		why  string
	}{
		{"/none", nil, "no client certificate"},
		{"/other", ps.c.fromOther, "does not chain"},
		{"/notallowed", ps.c.notAllowed, "not in the allowlist"},
	} {
		t.Run("refused "+tc.path, func(t *testing.T) {
			before := len(srvAll(e.events, ClientRefused))
			status, body, err := n.get(tc.path)
			require.NoError(t, err)
			assert.Equal(t, http.StatusBadGateway, status, "nginx got through: %s", body)
			srvRefusedEvent(t, e.events, before, tc.leaf, tc.why)
		})
	}

	t.Run("nginx's default Host is not the SNI: 421", func(t *testing.T) {
		status, body, err := n.get("/nohost")
		require.NoError(t, err)
		assert.Equal(t, http.StatusMisdirectedRequest, status, body)
	})

	t.Run("a shared domain", func(t *testing.T) {
		status, body, err := n.get("/shared-s1")
		require.NoError(t, err)
		assert.Equal(t, 200, status, body)
		status, body, err = n.get("/shared-s2")
		require.NoError(t, err)
		assert.Equal(t, 403, status, body)
	})

	// Last: it changes the policy.
	t.Run("a removed client never resumes nginx's session", func(t *testing.T) {
		for _, path := range []string{"/good", "/good12"} {
			var resumed bool
			for range 3 { // nginx makes a connection per request, resuming its session
				status, body, err := n.get(path)
				require.NoError(t, err)
				require.Equal(t, 200, status, body)
				resumed = resumed || srvBodyField(body, "resumed") == "true"
			}
			require.True(t, resumed, "control: nginx never resumed its session on %s, so the test would prove nothing", path)
		}
		p := ps.ownPolicy
		p.APIs = append([]APIPolicy(nil), p.APIs...)
		p.APIs[0].AllowedClients = []string{ps.notAllID}
		require.NoError(t, e.s.Update(p))
		for _, path := range []string{"/good", "/good12"} {
			before := len(srvAll(e.events, ClientRefused))
			status, body, err := n.get(path)
			require.NoError(t, err)
			assert.Equal(t, http.StatusBadGateway, status, "%s: a client removed by Update got through nginx: %s", path, body)
			srvRefusedEvent(t, e.events, before, ps.c.good, "not in the allowlist")
		}
	})
}

// TestServerPeersVerifyDepthCountsAsNginx: for chains with 0, 1 and 2
// intermediates under one root, ssl_verify_depth N in nginx and
// VerifyDepth N in a Server give the same verdict, as the policy's
// documentation says they count alike.
func TestServerPeersVerifyDepthCountsAsNginx(t *testing.T) {
	bin := requirePeer(t, "nginx")
	srvCA := newCA(t, "srv depth server CA")
	root := newCA(t, "srv depth root")
	i1 := srvIntermediate(t, root, "srv depth inter 1")
	i2 := srvIntermediate(t, i1, "srv depth inter 2")
	chains := []struct {
		name string
		leaf *mtlstest.Leaf
	}{
		{"leaf signed by the root", clientLeaf(t, root, "depth-0")},
		{"one intermediate", clientLeaf(t, i1, "depth-1")},
		{"two intermediates", clientLeaf(t, i2, "depth-2")},
	}
	depths := []int{1, 2, 3}
	ngxServer := srvServerLeaf(t, srvCA, "nginx depth server", "d1.test", "d2.test", "d3.test")
	blocks := []ngxBlock{{name: "default", server: ngxServer, clientCAs: root.CertPEM, depth: 1}}
	for _, d := range depths {
		blocks = append(blocks, ngxBlock{name: "d" + strconv.Itoa(d), serverName: "d" + strconv.Itoa(d) + ".test",
			server: ngxServer, clientCAs: root.CertPEM, depth: d})
	}
	n := ngxStart(t, bin, blocks)
	nginxVerdict := func(d int, leaf *mtlstest.Leaf) string {
		t.Helper()
		host := "d" + strconv.Itoa(d) + ".test"
		tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{ServerName: host, RootCAs: srvCA.Pool,
			Certificates: []tls.Certificate{leaf.TLS}}}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))+"/", nil)
		require.NoError(t, err)
		req.Host = host // nginx picks the block of the request by Host, its TLS settings by SNI: the same here
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		r := ngxReply{status: resp.StatusCode, body: string(body)}
		if r.status == http.StatusBadRequest && strings.Contains(r.body, "The SSL certificate error") {
			return "refuse"
		}
		require.Equal(t, 200, r.status, r.body)
		require.Equal(t, "d"+strconv.Itoa(d), r.field("block"), "nginx answered from another block")
		if r.field("verify") == "SUCCESS" {
			return "pass"
		}
		return "refuse: " + r.field("verify")
	}

	store := newStore(t)
	serverID := add(t, store, srvServerLeaf(t, srvCA, "library depth server", "a.test").PEM())
	for _, d := range depths {
		e := srvNew(t, store, ServerPolicy{Certificates: Map{"*": serverID}, ClientCAs: root.Pool, VerifyDepth: d})
		for _, ch := range chains {
			t.Run(fmt.Sprintf("depth %d, %s", d, ch.name), func(t *testing.T) {
				want := nginxVerdict(d, ch.leaf)
				got, _ := e.verdict(srvReq{sni: "a.test", cert: ch.leaf, roots: srvCA.Pool})
				lib := "refuse"
				if got == "200" {
					lib = "pass"
				}
				assert.Equal(t, want, lib, "nginx ssl_verify_depth %d gives %q, VerifyDepth %d gives %q", d, want, d, lib)
			})
		}
	}
}
