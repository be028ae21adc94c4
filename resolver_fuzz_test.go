package mtls

import (
	"errors"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The reference below applies contract section 2 literally, written apart
// from resolver.go and wildcard.go with the standard library: a scan over
// every pattern and a sort by the precedence rules. FuzzResolve checks the
// compiled Resolver against it.

// refPattern is a pattern normalised by refNormalize.
type refPattern struct {
	written, value string
	level          Level
	name           string // normalised; "*" for the default
	port           int    // 0: none written
	def, ip        bool
	labels         []string
}

var (
	refNameChars = regexp.MustCompile(`^[A-Za-z0-9_.*-]+$`)
	refDigits    = regexp.MustCompile(`^[0-9]+$`)
)

// refNormalize normalises a host (pattern false) or a pattern, or fails.
func refNormalize(s string, pattern bool) (refPattern, bool) {
	var p refPattern
	if s == "" || strings.Contains(s, "/") {
		return p, false
	}
	hostPart, portPart, hasPort, bracketed := s, "", false, false
	switch {
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		hostPart, bracketed = s[1:len(s)-1], true
	case strings.HasPrefix(s, "["):
		h, port, err := net.SplitHostPort(s)
		if err != nil || !strings.HasPrefix(s, "["+h+"]:") {
			return p, false
		}
		hostPart, portPart, hasPort, bracketed = h, port, true, true
	case strings.Count(s, ":") > 1:
		bracketed = true // bare IPv6
	case strings.Count(s, ":") == 1:
		i := strings.Index(s, ":")
		hostPart, portPart, hasPort = s[:i], s[i+1:], true
	}
	if hasPort {
		if !refDigits.MatchString(portPart) {
			return p, false
		}
		n, err := strconv.Atoi(portPart)
		if err != nil || n < 1 || n > 65535 {
			return p, false
		}
		p.port = n
	}
	if bracketed {
		a, err := netip.ParseAddr(hostPart)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return p, false
		}
		p.name, p.ip = a.Unmap().String(), true
		return p, true
	}
	name := strings.TrimSuffix(hostPart, ".")
	if pattern && name == "*" {
		p.name, p.def = "*", true
		return p, !hasPort
	}
	if name == "" || len(name) > 253 || !refNameChars.MatchString(name) {
		return p, false
	}
	name = strings.ToLower(name)
	labels := strings.Split(name, ".")
	numeric, anyDigitLabel := true, false
	for _, l := range labels {
		switch {
		case l == "" || len(l) > 63:
			return p, false
		case l == "*":
			if !pattern {
				return p, false
			}
		case strings.Contains(l, "*"):
			return p, false
		case refDigits.MatchString(l):
			anyDigitLabel = true
		default:
			numeric = false
		}
	}
	if numeric && anyDigitLabel {
		a, err := netip.ParseAddr(name)
		if err != nil || !a.Is4() || strings.Contains(name, "*") {
			return p, false
		}
		p.ip = true
	}
	p.name, p.labels = name, labels
	return p, true
}

func (p refPattern) wilds() int {
	n := 0
	for _, l := range p.labels {
		if l == "*" {
			n++
		}
	}
	return n
}

// right counts the literal labels right of the rightmost '*'.
func (p refPattern) right() int {
	n := 0
	for i := len(p.labels) - 1; i >= 0 && p.labels[i] != "*"; i-- {
		n++
	}
	return n
}

func (p refPattern) normal() string {
	name := p.name
	if strings.Contains(name, ":") {
		name = "[" + name + "]"
	}
	if p.port != 0 {
		return name + ":" + strconv.Itoa(p.port)
	}
	return name
}

func (p refPattern) matches(h refPattern) bool {
	if p.port != 0 && p.port != h.port {
		return false
	}
	switch {
	case p.def:
		return true
	case p.wilds() == 0:
		return p.name == h.name
	case h.ip || len(p.labels) != len(h.labels):
		return false
	}
	for i, l := range p.labels {
		if l != "*" && l != h.labels[i] {
			return false
		}
	}
	return true
}

// refLess reports whether a wins over b, both matching one host.
func refLess(a, b refPattern) bool {
	tier := func(p refPattern) int {
		t := 0
		if p.level == LevelGateway {
			t = 2
		}
		if p.def {
			t++
		}
		return t
	}
	exact := func(p refPattern) bool { return p.wilds() == 0 }
	hasPort := func(p refPattern) bool { return p.port != 0 }
	switch {
	case tier(a) != tier(b):
		return tier(a) < tier(b)
	case exact(a) != exact(b):
		return exact(a)
	case exact(a) && hasPort(a) != hasPort(b):
		return hasPort(a)
	case a.right() != b.right():
		return a.right() > b.right()
	case hasPort(a) != hasPort(b):
		return hasPort(a)
	case a.wilds() != b.wilds():
		return a.wilds() < b.wilds()
	case a.normal() != b.normal():
		return a.normal() < b.normal()
	}
	return a.written < b.written // same pattern written twice: the first
}

// refResolver is the reference: all valid patterns, or an error.
func refResolver(api, gateway Map) ([]refPattern, bool) {
	var all []refPattern
	for li, m := range []Map{api, gateway} {
		byKey := map[string]string{}
		for written, value := range m {
			p, ok := refNormalize(written, true)
			if !ok {
				return nil, false
			}
			key := p.normal()
			if v, dup := byKey[key]; dup && v != value {
				return nil, false
			}
			byKey[key] = value
			p.written, p.value, p.level = written, value, Level(li+1)
			all = append(all, p)
		}
	}
	return all, true
}

func refMatch(all []refPattern, host string) (Match, bool) {
	h, ok := refNormalize(host, false)
	if !ok {
		return Match{}, false
	}
	if h.port == 0 {
		h.port = 443
	}
	var best *refPattern
	for i := range all {
		if all[i].matches(h) && (best == nil || refLess(all[i], *best)) {
			best = &all[i]
		}
	}
	if best == nil {
		return Match{}, false
	}
	return Match{Value: best.value, Pattern: best.written, Level: best.level}, true
}

// fuzzMap reads a Map from lines of "pattern=value" ("pattern" alone: value
// "v").
func fuzzMap(s string) Map {
	m := Map{}
	for line := range strings.SplitSeq(s, "\n") {
		if line == "" {
			continue
		}
		pattern, value, ok := strings.Cut(line, "=")
		if !ok {
			value = "v"
		}
		m[pattern] = value
	}
	return m
}

// hostsFor returns hosts that a pattern should match: its '*' labels filled.
func hostsFor(pattern, label string) []string {
	if label == "" || strings.ContainsAny(label, ".:[]/") {
		label = "x"
	}
	name, port := pattern, ""
	if i := strings.LastIndex(pattern, ":"); i >= 0 && strings.Count(pattern, ":") == 1 {
		name, port = pattern[:i], pattern[i:]
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if l == "*" {
			labels[i] = label
		}
	}
	filled := strings.Join(labels, ".")
	return []string{pattern, filled + port, filled, filled + ":443", filled + ":8443", strings.ToUpper(filled) + "." + port}
}

func FuzzResolve(f *testing.F) {
	f.Add("api.example.com=a\n*.example.com=b", "*=c\napi.example.com:8443=d", "api.example.com:8443", "x")
	f.Add("*.production.myservice.com:8443=a\napi.*.myservice.com:8443=b", "", "api.production.myservice.com:8443", "api")
	f.Add("a.*.example.com\n*.*.example.com:8443=p", "*.*.*.*=w\n10.0.0.1=ip", "a.b.example.com:8443", "b")
	f.Add("[::1]:8443=six", "::1=any\n*=def", "[0:0::1]:8443", "")
	f.Add("API.Example.COM.=up", "api.example.com:443=gw", "api.example.com", "q")
	f.Fuzz(func(t *testing.T, apiText, gatewayText, host, label string) {
		api, gateway := fuzzMap(apiText), fuzzMap(gatewayText)
		r, err := NewResolver(api, gateway)
		all, ok := refResolver(api, gateway)
		if (err == nil) != ok {
			t.Fatalf("NewResolver(%q, %q): error %v, reference accepts: %v", api, gateway, err, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("error %v does not wrap ErrInvalidPattern", err)
			}
			return
		}
		hosts := []string{host}
		for _, m := range []Map{api, gateway} {
			for p := range m {
				hosts = append(hosts, hostsFor(p, label)...)
			}
		}
		for _, h := range hosts {
			got, gotOK := r.Match(h)
			want, wantOK := refMatch(all, h)
			if got != want || gotOK != wantOK {
				t.Fatalf("Match(%q) with api %q, gateway %q:\n got %+v %v\nwant %+v %v", h, api, gateway, got, gotOK, want, wantOK)
			}
			if m, ok, err := requestMatch(r, h); err == nil {
				if m != got || ok != gotOK {
					t.Fatalf("the request path finds %+v %v for %q, Match %+v %v", m, ok, h, got, gotOK)
				}
			} else if gotOK && !bareIPv6(h) && !ipWithTrailingDot(h) {
				t.Fatalf("the request path refuses %q (%v) but Match matched", h, err)
			}
		}
	})
}

func FuzzNewResolver(f *testing.F) {
	for _, p := range []string{"api.example.com", "*.example.com:8443", "a.*.b", "*", "[::1]:443", "10.0.0.1",
		"https://x", "a*.b", "*:443", "x:0", "x:65536", "", "a..b", "bücher.de", "1.2.*.4", "Api.Example.COM."} {
		f.Add(p, "x")
	}
	label := regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)
	f.Fuzz(func(t *testing.T, pattern, fill string) {
		r, err := NewResolver(Map{pattern: "v"}, nil)
		p, ok := refNormalize(pattern, true)
		if ok != (err == nil) {
			t.Fatalf("NewResolver(%q): error %v; reference accepts: %v", pattern, err, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPattern) || !strings.Contains(err.Error(), quotePattern(pattern)) {
				t.Fatalf("NewResolver(%q): error %q must wrap ErrInvalidPattern and name the pattern", pattern, err)
			}
			return
		}
		// A host the pattern must match: its '*' labels filled.
		if !label.MatchString(fill) {
			fill = "x"
		}
		name := "example.com"
		switch {
		case p.labels != nil:
			labels := slices.Clone(p.labels)
			for i, l := range labels {
				if l == "*" {
					labels[i] = fill
				}
			}
			name = strings.Join(labels, ".")
		case strings.Contains(p.name, ":"):
			name = "[" + p.name + "]"
		case p.ip:
			name = p.name
		}
		if _, err := netip.ParseAddr(name); err == nil && p.labels != nil {
			return // the filled wildcard reads as an IP literal, which wildcards never match
		}
		hosts := []string{name, name + ":8443"}
		if p.port != 0 {
			hosts = []string{name + ":" + strconv.Itoa(p.port)}
			if p.port == 443 {
				hosts = append(hosts, name)
			}
		}
		want := Match{Value: "v", Pattern: pattern, Level: LevelAPI}
		for _, h := range hosts {
			if _, _, err := requestMatch(r, h); err != nil {
				continue // the filled name is not a host: too long, or digits only
			}
			if m, ok := r.Match(h); !ok || m != want {
				t.Fatalf("NewResolver(%q).Match(%q) = %+v, %v; want %+v", pattern, h, m, ok, want)
			}
		}
	})
}
