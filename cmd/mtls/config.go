package main

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/tykconf"
)

// config is a Tyk configuration loaded for resolve and check.
type config struct {
	gw    *tykconf.Gateway
	apis  []*tykconf.API
	store mtls.CertStore
	close func()
}

// loadConfig reads -conf and -apps (default: app_path) and opens the
// certificate store the configuration names.
func loadConfig(conf, apps string) (*config, error) {
	if conf == "" {
		return nil, usagef("-conf is required")
	}
	gw, err := tykconf.LoadGateway(conf)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if apps == "" {
		apps = gw.AppPath
	}
	c := &config{gw: gw, close: func() {}}
	if apps != "" {
		if c.apis, err = tykconf.LoadAPIs(apps); err != nil {
			return nil, usagef("%v", err)
		}
	}
	if gw.MTLS.StoreDir == "" {
		c.store = mtls.NewMemoryStore([]byte(gw.StoreSecret))
		return c, nil
	}
	fs, err := mtls.NewFileStore(gw.MTLS.StoreDir, []byte(gw.StoreSecret))
	if err != nil {
		return nil, usagef("%v", err)
	}
	c.store, c.close = fs, func() { fs.Close() }
	return c, nil
}

// runResolve prints the client certificate and pins a host gets, and which
// pattern at which level chose each, with the four steps of the
// precedence; or why none.
func runResolve(e *env, fs *flag.FlagSet, args []string) error {
	conf := fs.String("conf", "", "tyk.conf (required)")
	apps := fs.String("apps", "", "the directory of API definitions (default: app_path)")
	apiID := fs.String("api", "", "resolve at this API's level (its api_id)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one HOST[:PORT]")
	}
	c, err := loadConfig(*conf, *apps)
	if err != nil {
		return err
	}
	defer c.close()
	sel, err := c.gw.NewSelector(c.store)
	if err != nil {
		fmt.Fprintf(e.stderr, "mtls resolve: the gateway's policy cannot be used: %v\n", err)
		return failedCheck
	}
	defer sel.Close()
	if *apiID != "" {
		api := findAPI(c.apis, *apiID)
		if api == nil {
			return usagef("no API with api_id %q", *apiID)
		}
		if sel, err = api.ForAPI(sel); err != nil {
			fmt.Fprintf(e.stderr, "mtls resolve: the API's policy cannot be used: %v\n", err)
			return failedCheck
		}
	}
	res, err := sel.Explain(pos[0])
	if err != nil {
		return usagef("%v", err)
	}
	if err := e.print(resolutionJSON(res), resolutionText(res)); err != nil {
		return err
	}
	if res.Certificate.Err != nil || res.Pins.Err != nil {
		return failedCheck
	}
	return nil
}

func findAPI(apis []*tykconf.API, id string) *tykconf.API {
	for _, a := range apis {
		if a.APIID == id {
			return a
		}
	}
	return nil
}

var stepNames = [4]string{"api level, specific", "api level, '*'", "gateway level, specific", "gateway level, '*'"}

func resolutionText(r mtls.Resolution) string {
	var b strings.Builder
	fmt.Fprintf(&b, "host %s\n", r.Host)
	choice := func(what string, c mtls.Choice, detail string) {
		switch {
		case c.Pattern == "":
			fmt.Fprintf(&b, "%s: none (no pattern matches)\n", what)
		case c.Err != nil:
			fmt.Fprintf(&b, "%s: FAILS CLOSED: %s\n", what, strings.TrimPrefix(c.Err.Error(), "mtls: "))
		default:
			fmt.Fprintf(&b, "%s: %s\n", what, detail)
		}
		if c.Pattern != "" {
			fmt.Fprintf(&b, "  chosen by %q at the %s level, value %s\n", c.Pattern, c.Level, c.Value)
		}
		for i, s := range c.Steps {
			mark, text := " ", "-"
			if s.Pattern != "" {
				text = fmt.Sprintf("%q -> %s", s.Pattern, s.Value)
				if s == c.Match {
					mark = "*"
				}
			}
			fmt.Fprintf(&b, "  %s %d. %-24s %s\n", mark, i+1, stepNames[i]+":", text)
		}
	}
	choice("client certificate", r.Certificate, r.Certificate.ID)
	choice("pins", r.Pins, strings.Join(r.Pins.Pins, ", "))
	return b.String()
}

func resolutionJSON(r mtls.Resolution) any {
	type step struct {
		Pattern string `json:"pattern,omitempty"`
		Level   string `json:"level,omitempty"`
		Value   string `json:"value,omitempty"`
	}
	type choice struct {
		Pattern string   `json:"pattern,omitempty"`
		Level   string   `json:"level,omitempty"`
		Value   string   `json:"value,omitempty"`
		ID      string   `json:"id,omitempty"`
		Pins    []string `json:"pins,omitempty"`
		Error   string   `json:"error,omitempty"`
		Steps   [4]step  `json:"steps"`
	}
	conv := func(c mtls.Choice) choice {
		out := choice{Pattern: c.Pattern, Value: c.Value, ID: c.ID, Pins: c.Pins}
		if c.Pattern != "" {
			out.Level = c.Level.String()
		}
		if c.Err != nil {
			out.Error = c.Err.Error()
		}
		for i, s := range c.Steps {
			if s.Pattern != "" {
				out.Steps[i] = step{s.Pattern, s.Level.String(), s.Value}
			}
		}
		return out
	}
	return struct {
		Host        string `json:"host"`
		Certificate choice `json:"certificate"`
		Pins        choice `json:"pins"`
	}{r.Host, conv(r.Certificate), conv(r.Pins)}
}

// finding is one certificate check reports.
type finding struct {
	What     string    `json:"what"` // "missing or unreadable", "expired", "expires"
	Where    string    `json:"where"`
	Field    string    `json:"field"`
	Level    string    `json:"level,omitempty"`
	Pattern  string    `json:"pattern,omitempty"`
	Value    string    `json:"value"`
	ID       string    `json:"id,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// runCheck reports every certificate the configuration names (upstream,
// server, allowlists, pins) that is missing, unreadable, expired or
// expires within the window: exit status 1 when there is any.
func runCheck(e *env, fs *flag.FlagSet, args []string) error {
	conf := fs.String("conf", "", "tyk.conf (required)")
	apps := fs.String("apps", "", "the directory of API definitions (default: app_path)")
	within := fs.Duration("within", 720*time.Hour, "report certificates that expire within this")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*conf, *apps)
	if err != nil {
		return err
	}
	defer c.close()
	findings := c.check(e, *within, time.Now())
	var b strings.Builder
	for _, f := range findings {
		fmt.Fprintf(&b, "%-22s %s %s", f.What, f.Where, f.Field)
		if f.Pattern != "" {
			fmt.Fprintf(&b, "[%q]", f.Pattern)
		}
		fmt.Fprintf(&b, " = %s", f.Value)
		if !f.NotAfter.IsZero() {
			fmt.Fprintf(&b, " (%s, not after %s)", f.Subject, f.NotAfter.Format(time.RFC3339))
		}
		if f.Error != "" {
			fmt.Fprintf(&b, ": %s", f.Error)
		}
		b.WriteByte('\n')
	}
	if len(findings) == 0 {
		b.WriteString("ok: no certificate is missing, expired or expiring within " + within.String() + "\n")
	}
	if findings == nil {
		findings = []finding{}
	}
	if err := e.print(findings, b.String()); err != nil {
		return err
	}
	if len(findings) > 0 {
		return failedCheck
	}
	return nil
}

// check returns the findings of every policy of the configuration.
func (c *config) check(e *env, within time.Duration, now time.Time) []finding {
	var findings []finding
	add := func(where string, uses []mtls.CertificateUse) {
		for _, u := range uses {
			f := finding{Where: where, Field: u.Field, Pattern: u.Pattern, Value: u.Value, ID: u.ID,
				Subject: u.Subject, NotAfter: u.NotAfter}
			if u.Level != 0 {
				f.Level = u.Level.String()
			}
			switch {
			case u.Err != nil:
				f.What, f.Error = "missing or unreadable", strings.TrimPrefix(u.Err.Error(), "mtls: ")
			case u.NotAfter.IsZero():
				continue
			case !now.Before(u.NotAfter):
				f.What = "expired"
			case u.NotAfter.Sub(now) <= within:
				f.What = "expires"
			default:
				continue
			}
			findings = append(findings, f)
		}
	}
	if p, err := c.gw.Policy(); err != nil {
		findings = append(findings, finding{What: "invalid", Where: c.gw.File, Error: err.Error()})
	} else {
		add(c.gw.File, p.Inventory(e.ctx, c.store, mtls.LevelGateway))
	}
	for _, a := range c.apis {
		p, err := a.Policy()
		if err != nil {
			findings = append(findings, finding{What: "invalid", Where: a.File, Error: err.Error()})
			continue
		}
		add(a.File, p.Inventory(e.ctx, c.store, mtls.LevelAPI))
	}
	sc, err := tykconf.BuildServer(e.ctx, c.store, c.gw, c.apis)
	var pe *mtls.PolicyError
	switch {
	case errors.As(err, &pe):
		for _, p := range pe.Problems {
			findings = append(findings, finding{What: "missing or unreadable", Where: "server", Field: p.Field, Pattern: p.Pattern,
				Value: p.Value, Error: strings.TrimPrefix(p.Err.Error(), "mtls: ")})
		}
	case err != nil:
		findings = append(findings, finding{What: "invalid", Where: "server", Error: err.Error()})
	default:
		add("server", sc.Policy.Inventory(e.ctx, c.store))
	}
	sort.SliceStable(findings, func(i, j int) bool { return findings[i].Where < findings[j].Where })
	return findings
}
