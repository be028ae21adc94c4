package tykconf

// CheckRoutes reports two served APIs (active, not internal) that answer
// on the same domain and listen path. customDomains is the gateway's
// enable_custom_domains: without it, domains do not count.
func CheckRoutes(apis []*API, customDomains bool) error {
	seen := map[string]*API{}
	for _, a := range apis {
		if !a.Served() {
			continue
		}
		d := ""
		if customDomains {
			d = a.Domain
		}
		k := d + " " + a.ListenPath
		if prev := seen[k]; prev != nil {
			return fieldError(a.File, "proxy.listen_path", "%q on domain %q is also the listen path of %s", a.ListenPath, d, prev.File)
		}
		seen[k] = a
	}
	return nil
}

// Served reports whether the gateway serves a: active and not internal.
func (a *API) Served() bool { return a.Active && !a.Internal }

// Domain returns the domain a is served on under g: its domain when g has
// enable_custom_domains, else "" (every domain), as in Tyk.
func (g *Gateway) Domain(a *API) string {
	if !g.EnableCustomDomains {
		return ""
	}
	return a.Domain
}
