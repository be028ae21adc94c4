package gateway

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/tykconf"
)

// route is one served API.
type route struct {
	api     *tykconf.API
	domain  string // the domain it answers on, "" for every domain
	sel     *mtls.Selector
	policy  mtls.Policy // the upstream policy sel holds at the API level
	target  *url.URL
	handler http.Handler // the proxy behind the Server's middleware of the API
}

// table is the routes of one set of API definitions. Requests hold it
// (acquire, release) while they use its routes, so that the selectors of
// APIs removed by a reload are closed only after their last request.
type table struct {
	all      []*route
	strict   bool
	domains  *mtls.Resolver      // domain pattern -> itself
	byDomain map[string][]*route // routes of a domain, longest listen path first
	any      []*route            // routes on every domain, longest listen path first

	refs      atomic.Int64
	retired   atomic.Bool
	removed   []*mtls.Selector
	closeOnce sync.Once
}

func (t *table) add(r *route) { t.all = append(t.all, r) }

// compile builds the lookup structures.
func (t *table) compile(conf *tykconf.Gateway) error {
	t.byDomain = map[string][]*route{}
	patterns := mtls.Map{}
	for _, r := range t.all {
		if r.domain == "" {
			t.any = append(t.any, r)
			continue
		}
		t.byDomain[r.domain] = append(t.byDomain[r.domain], r)
		patterns[r.domain] = r.domain
	}
	longestFirst := func(rs []*route) {
		sort.SliceStable(rs, func(i, j int) bool {
			return len(rs[i].api.ListenPath) > len(rs[j].api.ListenPath)
		})
	}
	longestFirst(t.any)
	for _, rs := range t.byDomain {
		longestFirst(rs)
	}
	if len(patterns) > 0 {
		var err error
		if t.domains, err = mtls.NewResolver(patterns, nil); err != nil {
			return err
		}
	}
	return nil
}

// match returns the route of a request: among the APIs of the request's
// domain, then among those on every domain, the longest listen path that
// prefixes the path.
func (t *table) match(host, path string) *route {
	if t.domains != nil {
		if d, ok := t.domains.Resolve(host); ok {
			if r := t.find(t.byDomain[d], path); r != nil {
				return r
			}
		}
	}
	return t.find(t.any, path)
}

func (t *table) find(rs []*route, path string) *route {
	for _, r := range rs {
		if listenMatch(r.api.ListenPath, path, t.strict) {
			return r
		}
	}
	return nil
}

// listenMatch reports whether listen path lp takes path: as a prefix, as
// Tyk does by default ("/bill" takes "/billing"), or with
// enable_strict_routes only at a segment boundary. "/api/" also takes
// "/api".
func listenMatch(lp, path string, strict bool) bool {
	if strings.HasSuffix(lp, "/") && path == lp[:len(lp)-1] {
		return true
	}
	if !strings.HasPrefix(path, lp) {
		return false
	}
	return !strict || len(path) == len(lp) || strings.HasSuffix(lp, "/") || path[len(lp)] == '/'
}

// acquire returns the current table, held until release.
func (gw *gateway) acquire() *table {
	for {
		t := gw.routes.Load()
		t.refs.Add(1)
		if gw.routes.Load() == t {
			return t
		}
		t.release()
	}
}

func (t *table) release() {
	if t.refs.Add(-1) == 0 && t.retired.Load() {
		t.closeOnce.Do(t.closeRemoved)
	}
}

// retire marks a replaced table: the selectors of removed APIs are closed
// once no request holds it.
func (t *table) retire(removed []*mtls.Selector) {
	t.removed = removed
	t.retired.Store(true)
	if t.refs.Load() == 0 {
		t.closeOnce.Do(t.closeRemoved)
	}
}

func (t *table) closeRemoved() {
	for _, s := range t.removed {
		s.Close()
	}
}

// ServeHTTP routes a request: a path with dot segments gets 400; /tyk/
// and the options' admin paths go to the admin API (on
// control_api_hostname only, when set); everything else to its API.
func (gw *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if hasDotSegment(r.URL.Path) {
		const why = "the path has a . or .. segment"
		writeError(w, http.StatusBadRequest, "Bad Request: "+why)
		gw.log.Printf("api=- %s %s status=400 client=%s error=%q", r.Method, strconv.Quote(r.URL.Path), clientID(r), why)
		return
	}
	if gw.opts.isAdmin(r.URL.Path) && (gw.conf.ControlAPIHostname == "" || sameHost(r.Host, gw.conf.ControlAPIHostname)) {
		gw.admin.ServeHTTP(w, r)
		return
	}
	t := gw.acquire()
	defer t.release()
	rt := t.match(r.Host, r.URL.Path)
	if rt == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		gw.log.Printf("api=- %s %s status=404 client=%s", r.Method, strconv.Quote(r.URL.Path), clientID(r))
		return
	}
	rt.handler.ServeHTTP(w, r)
}

// writeError writes Tyk's JSON error.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error": ` + strconv.Quote(msg) + "}\n"))
}

// hasDotSegment reports whether p, a request's decoded path, has a "." or
// ".." segment. A dot segment that the client encoded (%2e%2e) or that
// encoded slashes delimit (..%2f) is one once decoded, so the decoded path
// is the one to check; a backslash counts as a separator too, as some
// servers take it for one. Such a path would be routed to one API and, resolved by
// the upstream (RFC 3986 section 5.2.4), reach another API's resource on the
// same upstream: the gateway refuses it rather than guess.
func hasDotSegment(p string) bool {
	for p != "" {
		seg := p
		if i := strings.IndexAny(p, `/\`); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func sameHost(hostport, name string) bool {
	h := hostport
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.EqualFold(strings.TrimSuffix(h, "."), name)
}

// reqLog is what the log line of a request says, filled in as it goes.
type reqLog struct {
	client mtls.Client
	known  bool  // client is set: the middleware let the request through
	err    error // the proxy's error
}

type reqLogKey struct{}

// newRoute builds the route of a: a ReverseProxy over the RoundTripper of
// sel, behind the Server's middleware of the API, in a handler that logs.
func (gw *gateway) newRoute(a *tykconf.API, sel *mtls.Selector, p mtls.Policy) *route {
	rt := &route{api: a, domain: gw.conf.Domain(a), sel: sel, policy: p, target: a.TargetURL}
	target, lp, strip := a.TargetURL, a.ListenPath, a.StripListenPath
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			if strip {
				pr.Out.URL.Path, pr.Out.URL.RawPath = stripListenPath(pr.In.URL, lp)
			}
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  sel.RoundTripper(),
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if l, ok := r.Context().Value(reqLogKey{}).(*reqLog); ok {
				l.err = err
			}
			writeError(w, http.StatusBadGateway, "There was a problem proxying the request")
		},
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l, ok := r.Context().Value(reqLogKey{}).(*reqLog); ok {
			l.client, _ = mtls.VerifiedClient(r)
			l.known = true
		}
		proxy.ServeHTTP(w, r)
	})
	checked := gw.srv.Middleware(a.APIID, inner)
	rt.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		l := &reqLog{}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		checked.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), reqLogKey{}, l)))
		gw.logRequest(rt, r, rec.status, l, time.Since(start))
	})
	return rt
}

// stripListenPath returns the path and raw path to forward for in, whose
// listen path is lp, without lp: the rest of the escaped path as the client
// wrote it (so that an encoded slash stays encoded) or, when lp is not a
// prefix of the escaped path because the client encoded some of it, the
// rest of the decoded path, which routing matched, re-encoded.
func stripListenPath(in *url.URL, lp string) (path, rawPath string) {
	if rest, ok := cutListenPath(in.EscapedPath(), lp); ok {
		if p, err := url.PathUnescape(rest); err == nil {
			return p, rest
		}
	}
	rest, _ := cutListenPath(in.Path, lp)
	return rest, ""
}

// cutListenPath returns p without lp ("/api/" also cuts "/api"), starting
// with "/".
func cutListenPath(p, lp string) (string, bool) {
	rest, ok := strings.CutPrefix(p, lp)
	if !ok {
		rest, ok = strings.CutPrefix(p, strings.TrimSuffix(lp, "/"))
	}
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	return rest, ok
}

// copyBuffers are the ReverseProxies' buffers for copying bodies, which
// would otherwise allocate 32 KiB per request.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// logRequest writes the log line of a request: the API, the client
// certificate's ID, and the ID of the certificate the selector presents
// to the upstream (or why it cannot).
func (gw *gateway) logRequest(rt *route, r *http.Request, status int, l *reqLog, d time.Duration) {
	var b strings.Builder
	b.Grow(256)
	b.WriteString("api=")
	b.WriteString(rt.api.APIID)
	b.WriteString(" ")
	b.WriteString(r.Method)
	b.WriteString(" ")
	b.WriteString(strconv.Quote(r.URL.Path))
	b.WriteString(" status=")
	b.WriteString(strconv.Itoa(status))
	b.WriteString(" client=")
	if l.known && l.client.ID != "" {
		b.WriteString(l.client.ID)
	} else {
		b.WriteString(clientID(r))
	}
	b.WriteString(" upstream=")
	b.WriteString(rt.target.Host)
	if l.known && rt.target.Scheme == "https" {
		b.WriteString(" upstream_cert=")
		res, err := rt.sel.Explain(rt.target.Host)
		switch {
		case err != nil:
			b.WriteString("? (" + strconv.Quote(err.Error()) + ")")
		case res.Certificate.Err != nil:
			b.WriteString("- (fails closed)")
		case res.Certificate.ID != "":
			b.WriteString(res.Certificate.ID)
		default:
			b.WriteString("-")
		}
	}
	b.WriteString(" dur=")
	b.WriteString(d.Round(time.Microsecond).String())
	if l.err != nil {
		b.WriteString(" error=")
		b.WriteString(strconv.Quote(l.err.Error()))
	}
	gw.log.Print(b.String())
}

// clientID names the client certificate of r's connection for a log: "-"
// for none, its ID followed by "(unverified)" when no rules verified it.
func clientID(r *http.Request) string {
	if c, ok := mtls.VerifiedClient(r); ok {
		return c.ID
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "-"
	}
	return mtls.Fingerprint(r.TLS.PeerCertificates[0].Raw) + "(unverified)"
}

// recorder records the status of a response.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		r.wrote = true
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
