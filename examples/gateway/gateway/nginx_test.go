package gateway

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mtlsgo/mtls/mtlstest"
)

// startNginx runs nginx in the foreground on a free port of 127.0.0.1,
// presenting server and requiring client certificates of clientCA
// (ssl_verify_client on); it answers what it verified. It is stopped when
// the test ends.
func startNginx(t *testing.T, bin string, server *mtlstest.Leaf, clientCA *mtlstest.CA) (port int) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string][]byte{"server.pem": server.CertPEM, "server.key": server.KeyPEM, "clients.pem": clientCA.CertPEM} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		user := ""
		if os.Geteuid() == 0 {
			user = "user root root;\n"
		}
		conf := fmt.Sprintf(`%sdaemon off;
master_process off;
worker_processes 1;
error_log stderr info;
pid %[2]s/nginx.pid;
lock_file %[2]s/nginx.lock;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	default_type text/plain;
	server {
		listen 127.0.0.1:%[3]d ssl;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_certificate %[2]s/server.pem;
		ssl_certificate_key %[2]s/server.key;
		ssl_client_certificate %[2]s/clients.pem;
		ssl_verify_client on;
		location / {
			return 200 "nginx verify=$ssl_client_verify subject=$ssl_client_s_dn uri=$uri\n";
		}
	}
}
`, user, dir, port)
		path := filepath.Join(dir, "nginx.conf")
		require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
		var stderr syncBuffer
		cmd := exec.Command(bin, "-e", "stderr", "-p", dir+"/", "-c", path)
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		deadline := time.Now().Add(waitFor)
		up := false
		for !up && time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Now()
				continue
			case <-time.After(20 * time.Millisecond):
			}
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
				c.Close()
				up = true
			}
		}
		if up {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("nginx stderr:\n%s", stderr.String())
				}
			})
			return port
		}
		stop()
		if attempt < 4 && strings.Contains(stderr.String(), "Address already in use") {
			continue
		}
		t.Fatalf("nginx did not start:\n%s", stderr.String())
	}
}

// TestGatewayNginxUpstream: nginx as an upstream with ssl_verify_client on
// sees the client certificate the API maps to it, and refuses one of
// another CA that a second API maps to it; curl is the client.
func TestGatewayNginxUpstream(t *testing.T) {
	bin := requirePeer(t, "nginx")
	requirePeer(t, "curl")
	s := newScenario(t, nil, nil)
	ngxClients := mtlstest.MustCA(t, "nginx clients CA")
	ngxServer := s.leaf("nginx-server", s.serverCA, "localhost")
	s.leaf("gw-nginx", ngxClients)
	port := startNginx(t, bin, ngxServer, ngxClients)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	mtlsFor := func(cert string) obj {
		return obj{"use_mutual_tls_auth": true, "client_certificates": []string{"../alice.pem"},
			"upstream_certificates": obj{host: cert},
			"mtls":                  obj{"upstream_cas": []string{"../server-ca.pem"}}}
	}
	s.writeAPI("legacy", apiDef("legacy", "shared.test", "/legacy/", "https://"+host+"/app", mtlsFor("../gw-nginx-full.pem")))
	s.writeAPI("wrongcert", apiDef("wrongcert", "shared.test", "/wrong/", "https://"+host, mtlsFor("../gw-u1-full.pem")))
	s.start(t)

	r := s.curl(t, "alice", s.url("shared.test", "/legacy/v1/x"))
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, "nginx verify=SUCCESS subject=CN=gw-nginx,O=mtlstest uri=/app/v1/x\n", r.body)

	r = s.curl(t, "alice", s.url("shared.test", "/wrong/x"))
	require.Zero(t, r.code, r.stderr)
	assert.Equal(t, 400, r.status, "nginx took a certificate of another CA: %s", r.body)
	assert.Contains(t, r.body, "The SSL certificate error")

	r = s.curl(t, "bob", s.url("shared.test", "/legacy/v1/x"))
	assert.Equal(t, 403, r.status, "the gateway's own check still holds: %s", r.body)
	assert.True(t, s.gw.waitLog(`api=legacy GET "/legacy/v1/x" status=200 client=`+s.leaves["alice"].ID()+" upstream="+host+" upstream_cert="+s.leaves["gw-nginx"].ID()))
}
