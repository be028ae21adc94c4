// Package gateway is a Tyk-compatible API gateway built on package mtls:
// it reads Tyk's own tyk.conf and classic API definitions (package
// tykconf), terminates TLS and mutual TLS with an mtls.Server, and proxies
// each API with an httputil.ReverseProxy over the RoundTripper of the API's
// mtls.Selector, which presents each upstream its own client certificate.
//
// Run is the whole gateway; examples/gateway is the command that runs it,
// and the metrics module's examples/gateway runs it with a Prometheus
// collector, through the options of this package (WithSelectorHook,
// WithServerHook, WithRegister, WithAdminHandler).
//
// It serves every active API, routed by domain (when tyk.conf sets
// enable_custom_domains) and listen path, longest first; a path with a "."
// or ".." segment, decoded or not, is refused with 400 before routing.
// When it listens it prints one line on stdout, "listening on
// https://ADDR"; it logs each request on stderr, with the client
// certificate's ID and the ID of the client certificate presented
// upstream, quoting what the client wrote. Tyk's certificate API
// (/tyk/certs, package certapi) and /tyk/reload are served on the same
// listener, behind the X-Tyk-Authorization header (the secret of tyk.conf)
// and, with mtls.admin_client_cas, a client certificate. /tyk/reload and
// SIGHUP re-read the API definitions: all of them apply, or none.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/certapi"
	"github.com/mtlsgo/mtls/tykconf"
)

// Run is the gateway: it reads the configuration named by args ("-conf
// tyk.conf", "-apps DIR"), listens, prints "listening on URL" on stdout,
// logs on stderr, reloads the API definitions on SIGHUP, and serves until
// ctx is done; then it shuts down gracefully and returns nil. A
// configuration error is a *tykconf.Error and a bad command line a usage
// error: ExitCode tells them from other failures.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Option) error {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	if err := o.check(); err != nil {
		return err
	}
	conf, apps, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	// SIGHUP reloads: listened for from the start, so that one sent as
	// soon as the listening line is out never kills the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	logger := log.New(stderr, "", log.LstdFlags|log.Lmicroseconds)
	gw, err := newGateway(ctx, conf, apps, logger, o)
	if err != nil {
		return err
	}
	defer gw.close()
	hs, ln, scheme, err := gw.listen()
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, ln.Addr())
	return gw.serve(ctx, hs, served, hup)
}

// ExitCode is the exit status of a command whose Run returned err: 0 for
// nil, 2 for a configuration or usage error, 1 for anything else.
func ExitCode(err error) int {
	var ce *tykconf.Error
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce) || errors.As(err, &ue):
		return 2
	}
	return 1
}

// usageError is a command line that cannot be run.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// parseArgs returns the paths of tyk.conf and of the API definitions'
// directory ("": app_path).
func parseArgs(args []string, stderr io.Writer) (conf, apps string, err error) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&conf, "conf", "tyk.conf", "Tyk's `tyk.conf`")
	fs.StringVar(&apps, "apps", "", "the `directory` of the API definitions (default: app_path of tyk.conf)")
	if err := fs.Parse(args); err != nil {
		return "", "", usageError{err}
	}
	if fs.NArg() > 0 {
		return "", "", usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	return conf, apps, nil
}

// listen opens the listener of tyk.conf and returns the server for it,
// with the Server's TLS config when use_ssl is set, and the URL scheme.
func (gw *gateway) listen() (*http.Server, net.Listener, string, error) {
	addr := net.JoinHostPort(gw.conf.ListenAddress, strconv.Itoa(gw.conf.ListenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, "", err
	}
	hs := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          gw.log,
	}
	if !gw.conf.UseSSL {
		return hs, ln, "http", nil
	}
	cfg := gw.srv.TLSConfig()
	cfg.MinVersion = gw.conf.MinVersion
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.MaxVersion = gw.conf.MaxVersion
	cfg.CipherSuites = gw.conf.CipherSuites
	hs.TLSConfig = cfg
	return hs, ln, "https", nil
}

// serve reloads on hup until the server stops or ctx is done, and then
// shuts the server down gracefully.
func (gw *gateway) serve(ctx context.Context, hs *http.Server, served <-chan error, hup <-chan os.Signal) error {
	for {
		select {
		case <-hup:
			gw.log.Printf("SIGHUP: reloading the API definitions")
			_ = gw.reload()
		case err := <-served:
			return err
		case <-ctx.Done():
			shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := hs.Shutdown(shutCtx)
			cancel()
			<-served
			return err
		}
	}
}

// gateway is the state of a running gateway: its store, the gateway-level
// selector, the server, and the routes of the API definitions now loaded.
type gateway struct {
	conf    *tykconf.Gateway
	appsDir string
	log     *log.Logger
	opts    *options
	store   mtls.CertStore
	sel     *mtls.Selector // the gateway level; API selectors derive from it
	srv     *mtls.Server
	admin   http.Handler

	mu     sync.Mutex // serialises reloads
	routes atomic.Pointer[table]
}

// newGateway reads the configuration and builds the gateway, without
// listening.
func newGateway(ctx context.Context, confPath, appsDir string, logger *log.Logger, o *options) (*gateway, error) {
	conf, err := tykconf.LoadGateway(confPath)
	if err != nil {
		return nil, err
	}
	if appsDir == "" {
		if conf.AppPath == "" {
			return nil, &tykconf.Error{File: conf.File, Field: "app_path", Err: errors.New("not set: set it or pass -apps")}
		}
		appsDir = conf.AppPath
	}
	for _, w := range conf.Warnings {
		logger.Printf("warning: %s", w)
	}
	apis, err := loadAPIs(conf, appsDir)
	if err != nil {
		return nil, err
	}
	gw := &gateway{conf: conf, appsDir: appsDir, log: logger, opts: o}
	gw.routes.Store(&table{})
	ok := false
	defer func() {
		if !ok {
			gw.close()
		}
	}()
	sc, err := gw.build(ctx, apis)
	if err != nil {
		return nil, err
	}
	for _, fn := range o.register {
		if err := fn(gw.sel, gw.srv); err != nil {
			return nil, err
		}
	}
	gw.admin = gw.adminHandler()
	if err := gw.apply(apis, sc); err != nil {
		return nil, err
	}
	ok = true
	return gw, nil
}

// build opens the store and makes the gateway-level selector and the
// server, with the options' event hooks; it returns the server's
// configuration for apis.
func (gw *gateway) build(ctx context.Context, apis []*tykconf.API) (*tykconf.ServerConfig, error) {
	var err error
	if gw.store, err = openStore(gw.conf, gw.log); err != nil {
		return nil, err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	if gw.conf.ProxySSLMinVersion != 0 {
		base.TLSClientConfig = &tls.Config{MinVersion: gw.conf.ProxySSLMinVersion}
	}
	selOpts := []mtls.Option{mtls.WithBaseTransport(base)}
	if h := hook(nil, gw.opts.selectorHooks); h != nil {
		selOpts = append(selOpts, mtls.WithEventHook(h))
	}
	if gw.sel, err = gw.conf.NewSelector(gw.store, selOpts...); err != nil {
		return nil, err
	}
	sc, err := tykconf.BuildServer(ctx, gw.store, gw.conf, apis)
	if err != nil {
		return nil, err
	}
	if gw.srv, err = sc.NewServer(gw.store, mtls.WithEventHook(hook(gw.serverEvent, gw.opts.serverHooks))); err != nil {
		return nil, err
	}
	return sc, nil
}

// loadAPIs reads the API definitions and checks their routes.
func loadAPIs(conf *tykconf.Gateway, dir string) ([]*tykconf.API, error) {
	apis, err := tykconf.LoadAPIs(dir)
	if err != nil {
		return nil, err
	}
	if err := tykconf.CheckRoutes(apis, conf.EnableCustomDomains); err != nil {
		return nil, err
	}
	return apis, nil
}

// openStore opens the certificate store: a FileStore in mtls.store_dir, or
// a MemoryStore.
func openStore(conf *tykconf.Gateway, logger *log.Logger) (mtls.CertStore, error) {
	secret := []byte(conf.StoreSecret)
	if conf.MTLS.StoreDir == "" {
		logger.Printf("warning: %s: mtls.store_dir: not set: certificates added through /tyk/certs are kept in memory only", conf.File)
		return mtls.NewMemoryStore(secret), nil
	}
	st, err := mtls.NewFileStore(conf.MTLS.StoreDir, secret)
	if err != nil {
		return nil, &tykconf.Error{File: conf.File, Field: "mtls.store_dir", Err: err}
	}
	return st, nil
}

// serverEvent logs what the TLS level refused, which no request log shows.
// The SNI is the client's: quoted.
func (gw *gateway) serverEvent(e mtls.Event) {
	switch e.Kind {
	case mtls.ClientRefused:
		id := e.CertificateID
		if id == "" {
			id = "-"
		}
		gw.log.Printf("refused client=%s sni=%s api=%s: %v", id, strconv.Quote(e.Host), e.API, e.Err)
	case mtls.FailedClosed:
		gw.log.Printf("server certificate of sni=%s cannot be used (%s %q): %v", strconv.Quote(e.Host), e.Pattern, e.Value, e.Err)
	}
}

// close closes everything the gateway opened.
func (gw *gateway) close() {
	if t := gw.routes.Load(); t != nil {
		for _, r := range t.all {
			r.sel.Close()
		}
	}
	if gw.sel != nil {
		gw.sel.Close()
	}
	if gw.srv != nil {
		gw.srv.Close()
	}
	if c, ok := gw.store.(io.Closer); ok {
		c.Close()
	}
}

// adminHandler serves /tyk/certs, /tyk/reload and the options' admin
// handlers behind the secret and, with mtls.admin_client_cas, a client
// certificate from those CAs.
func (gw *gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	certs := certapi.New(gw.store)
	mux.Handle(certapi.Path, certs)
	mux.Handle(certapi.Path+"/", certs)
	reload := http.HandlerFunc(gw.serveReload)
	mux.Handle("/tyk/reload", reload)
	mux.Handle("/tyk/reload/", reload)
	mux.Handle("/tyk/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		certapi.Error(w, http.StatusNotFound, "not found")
	}))
	for _, r := range gw.opts.admin {
		mux.Handle(r.path, r.handler)
	}
	api := ""
	if len(gw.conf.MTLS.AdminClientCAs) > 0 {
		api = tykconf.AdminAPI
	}
	h := gw.srv.Middleware(api, certapi.RequireSecret(gw.conf.Secret, mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		gw.log.Printf("admin %s %s status=%d client=%s dur=%s", r.Method, strconv.Quote(r.URL.Path), rec.status, clientID(r), time.Since(start).Round(time.Microsecond))
	})
}

// serveReload is /tyk/reload.
func (gw *gateway) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		certapi.Error(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed")
		return
	}
	if err := gw.reload(); err != nil {
		certapi.Error(w, http.StatusBadRequest, "reload failed, the previous API definitions stay: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok","message":""}`+"\n")
}
