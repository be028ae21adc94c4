package main

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

// run is the gateway: it reads the configuration named by args, listens,
// prints "listening on URL" on stdout, logs on stderr, and serves until ctx
// is done; then it shuts down gracefully and returns nil. A configuration
// error is a *tykconf.Error (exit status 2).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("conf", "tyk.conf", "Tyk's `tyk.conf`")
	apps := fs.String("apps", "", "the `directory` of the API definitions (default: app_path of tyk.conf)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	// SIGHUP reloads: listened for from the start, so that one sent as
	// soon as the listening line is out never kills the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	logger := log.New(stderr, "", log.LstdFlags|log.Lmicroseconds)
	gw, err := newGateway(ctx, *conf, *apps, logger)
	if err != nil {
		return err
	}
	defer gw.close()

	addr := net.JoinHostPort(gw.conf.ListenAddress, strconv.Itoa(gw.conf.ListenPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          logger,
	}
	scheme := "http"
	if gw.conf.UseSSL {
		scheme = "https"
		cfg := gw.srv.TLSConfig()
		cfg.MinVersion = gw.conf.MinVersion
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
		cfg.MaxVersion = gw.conf.MaxVersion
		cfg.CipherSuites = gw.conf.CipherSuites
		hs.TLSConfig = cfg
	}
	served := make(chan error, 1)
	go func() {
		if gw.conf.UseSSL {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, ln.Addr())

	for {
		select {
		case <-hup:
			logger.Printf("SIGHUP: reloading the API definitions")
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
	store   mtls.CertStore
	sel     *mtls.Selector // the gateway level; API selectors derive from it
	srv     *mtls.Server
	admin   http.Handler

	mu     sync.Mutex // serialises reloads
	routes atomic.Pointer[table]
}

// newGateway reads the configuration and builds the gateway, without
// listening.
func newGateway(ctx context.Context, confPath, appsDir string, logger *log.Logger) (*gateway, error) {
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
	gw := &gateway{conf: conf, appsDir: appsDir, log: logger}
	ok := false
	defer func() {
		if !ok {
			gw.close()
		}
	}()
	if gw.store, err = openStore(conf, logger); err != nil {
		return nil, err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	if conf.ProxySSLMinVersion != 0 {
		base.TLSClientConfig = &tls.Config{MinVersion: conf.ProxySSLMinVersion}
	}
	if gw.sel, err = conf.NewSelector(gw.store, mtls.WithBaseTransport(base)); err != nil {
		return nil, err
	}
	sc, err := tykconf.BuildServer(ctx, gw.store, conf, apis)
	if err != nil {
		return nil, err
	}
	if gw.srv, err = sc.NewServer(gw.store, mtls.WithEventHook(gw.serverEvent)); err != nil {
		return nil, err
	}
	gw.admin = gw.adminHandler()
	gw.routes.Store(&table{})
	if err := gw.apply(apis, sc); err != nil {
		return nil, err
	}
	ok = true
	return gw, nil
}

// loadAPIs reads the API definitions and logs their warnings.
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

func (gw *gateway) warnAPIs(apis []*tykconf.API) {
	for _, a := range apis {
		if !a.Active {
			gw.log.Printf("%s: api %s is not active: not served", a.File, a.APIID)
			continue
		}
		for _, w := range a.Warnings {
			gw.log.Printf("warning: %s", w)
		}
		for _, w := range gw.conf.APIWarnings(a) {
			gw.log.Printf("warning: %s", w)
		}
	}
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
func (gw *gateway) serverEvent(e mtls.Event) {
	switch e.Kind {
	case mtls.ClientRefused:
		id := e.CertificateID
		if id == "" {
			id = "-"
		}
		gw.log.Printf("refused client=%s sni=%s api=%s: %v", id, e.Host, e.API, e.Err)
	case mtls.FailedClosed:
		gw.log.Printf("server certificate of sni=%s cannot be used (%s %q): %v", e.Host, e.Pattern, e.Value, e.Err)
	}
}

// reload re-reads the API definitions and applies them; on error the
// previous ones stay, and the error is logged.
func (gw *gateway) reload() error {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	err := gw.reloadLocked(context.Background())
	if err != nil {
		gw.log.Printf("reload failed, keeping the previous API definitions: %v", err)
		return err
	}
	gw.log.Printf("reloaded %d API definitions from %s", len(gw.routes.Load().all), gw.appsDir)
	return nil
}

func (gw *gateway) reloadLocked(ctx context.Context) error {
	apis, err := loadAPIs(gw.conf, gw.appsDir)
	if err != nil {
		return err
	}
	sc, err := tykconf.BuildServer(ctx, gw.store, gw.conf, apis)
	if err != nil {
		return err
	}
	return gw.apply(apis, sc)
}

// apply puts apis in place of the APIs served now, without dropping a
// request in flight:
//  1. every API's upstream policy is checked (a new API gets its selector
//     from ForAPI), and nothing changes if one is refused;
//  2. the server's policy is updated (Server.Update, which checks it too);
//  3. the selectors of the APIs that stay are updated (Selector.Update);
//  4. the new routes replace the old ones;
//  5. the selectors of removed APIs are closed once the requests that
//     were using the old routes are done.
func (gw *gateway) apply(apis []*tykconf.API, sc *tykconf.ServerConfig) error {
	old := gw.routes.Load()
	oldByID := map[string]*route{}
	for _, r := range old.all {
		oldByID[r.api.APIID] = r
	}
	created := map[string]*mtls.Selector{}
	closeCreated := func() {
		for _, s := range created {
			s.Close()
		}
	}
	for _, a := range apis {
		if !a.Served() {
			continue
		}
		if oldByID[a.APIID] != nil {
			// Check the policy on a selector of its own, so that an
			// error leaves every API as it is.
			tmp, err := a.ForAPI(gw.sel)
			if err != nil {
				closeCreated()
				return err
			}
			tmp.Close()
			continue
		}
		s, err := a.ForAPI(gw.sel)
		if err != nil {
			closeCreated()
			return err
		}
		created[a.APIID] = s
	}
	if err := gw.srv.Update(sc.Policy); err != nil {
		closeCreated()
		return sc.Explain(err)
	}
	for _, w := range sc.Warnings {
		gw.log.Printf("warning: %s", w)
	}
	gw.warnAPIs(apis)
	next := &table{strict: gw.conf.EnableStrictRoutes}
	for _, a := range apis {
		if !a.Served() {
			continue
		}
		sel := created[a.APIID]
		if prev := oldByID[a.APIID]; prev != nil {
			sel = prev.sel
			if err := a.Update(sel); err != nil {
				// Checked above: only a store change in between gets here.
				gw.log.Printf("%s: the upstream policy could not be updated, the previous one stays: %v", a.File, err)
			}
			delete(oldByID, a.APIID)
		}
		next.add(gw.newRoute(a, sel))
	}
	if err := next.compile(gw.conf); err != nil {
		// Domains were checked when read: this does not happen.
		closeCreated()
		return err
	}
	gw.routes.Store(next)
	var removed []*mtls.Selector
	for _, r := range oldByID {
		removed = append(removed, r.sel)
	}
	old.retire(removed)
	return nil
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

// adminHandler serves /tyk/certs and /tyk/reload behind the secret and,
// with mtls.admin_client_cas, a client certificate from those CAs.
func (gw *gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	certs := certapi.New(gw.store)
	mux.Handle(certapi.Path, certs)
	mux.Handle(certapi.Path+"/", certs)
	reload := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	})
	mux.Handle("/tyk/reload", reload)
	mux.Handle("/tyk/reload/", reload)
	mux.Handle("/tyk/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		certapi.Error(w, http.StatusNotFound, "not found")
	}))
	api := ""
	if len(gw.conf.MTLS.AdminClientCAs) > 0 {
		api = tykconf.AdminAPI
	}
	h := gw.srv.Middleware(api, certapi.RequireSecret(gw.conf.Secret, mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		gw.log.Printf("admin %s %s status=%d client=%s dur=%s", r.Method, r.URL.Path, rec.status, clientID(r, nil), time.Since(start).Round(time.Microsecond))
	})
}
