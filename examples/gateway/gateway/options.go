package gateway

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/mtlsgo/mtls"
)

// Option adds to the gateway that Run runs.
type Option func(*options)

type options struct {
	selectorHooks []func(mtls.Event)
	serverHooks   []func(mtls.Event)
	register      []func(*mtls.Selector, *mtls.Server) error
	admin         []adminRoute
}

type adminRoute struct {
	path    string
	handler http.Handler
}

// WithSelectorHook adds fn to the event hooks of the gateway-level
// selector, which the selector of every API derives from and shares (see
// mtls.WithEventHook: fn runs on the request's or the connection's
// goroutine, must be quick and must not call the selector). Hooks run in
// the order given.
func WithSelectorHook(fn func(mtls.Event)) Option {
	return func(o *options) { o.selectorHooks = append(o.selectorHooks, fn) }
}

// WithServerHook adds fn to the event hooks of the gateway's mtls.Server,
// after the gateway's own, which logs refusals.
func WithServerHook(fn func(mtls.Event)) Option {
	return func(o *options) { o.serverHooks = append(o.serverHooks, fn) }
}

// WithRegister calls fn once the gateway-level selector and the server are
// built, before any API is loaded and before the gateway listens; an error
// stops Run. The gateway-level selector's Inventory holds what every API
// selector names, those of APIs that reloads add included, so registering
// it and the server (with a metrics collector, say) covers the whole
// gateway. Both are closed when Run returns.
func WithRegister(fn func(sel *mtls.Selector, srv *mtls.Server) error) Option {
	return func(o *options) { o.register = append(o.register, fn) }
}

// WithAdminHandler serves h at path on the admin side of the gateway,
// beside /tyk/certs and /tyk/reload: behind the same checks (the
// X-Tyk-Authorization secret of tyk.conf, and a client certificate when
// mtls.admin_client_cas is set; no secret: 404), on control_api_hostname
// only when it is set, and logged as they are. A path ending in "/" also
// takes the paths below it. It takes precedence over the APIs' listen
// paths on the admin's domain, as /tyk/ does. path must be clean, absolute,
// not "/" and not under /tyk/, which is Tyk's.
func WithAdminHandler(path string, h http.Handler) Option {
	return func(o *options) { o.admin = append(o.admin, adminRoute{path, h}) }
}

// check refuses admin paths that cannot be served as documented.
func (o *options) check() error {
	seen := map[string]bool{}
	for _, r := range o.admin {
		clean := path.Clean(r.path)
		if strings.HasSuffix(r.path, "/") && clean != "/" {
			clean += "/"
		}
		switch {
		case r.handler == nil:
			return fmt.Errorf("admin handler %q: nil", r.path)
		case !strings.HasPrefix(r.path, "/") || clean != r.path || strings.ContainsAny(r.path, "{} \t\\"):
			return fmt.Errorf("admin handler %q: not a clean absolute path", r.path)
		case r.path == "/" || r.path == "/tyk" || strings.HasPrefix(r.path, "/tyk/"):
			return fmt.Errorf("admin handler %q: / and /tyk/ are not available", r.path)
		case seen[r.path]:
			return fmt.Errorf("admin handler %q: given twice", r.path)
		}
		seen[r.path] = true
	}
	return nil
}

// isAdmin reports whether path goes to the admin side.
func (o *options) isAdmin(p string) bool {
	if strings.HasPrefix(p, "/tyk/") {
		return true
	}
	for _, r := range o.admin {
		if p == r.path || strings.HasSuffix(r.path, "/") && strings.HasPrefix(p, r.path) {
			return true
		}
	}
	return false
}

// hook returns the event hook that calls first, then each of hooks; nil
// when there is nothing to call.
func hook(first func(mtls.Event), hooks []func(mtls.Event)) func(mtls.Event) {
	all := hooks
	if first != nil {
		all = append([]func(mtls.Event){first}, hooks...)
	}
	switch len(all) {
	case 0:
		return nil
	case 1:
		return all[0]
	}
	return func(e mtls.Event) {
		for _, fn := range all {
			fn(e)
		}
	}
}
