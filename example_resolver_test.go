package mtls_test

import (
	"errors"
	"fmt"

	"github.com/mtlsgo/mtls"
)

func ExampleNewResolver() {
	// The gateway level applies to every API; an API level to one API and
	// wins over the gateway. The values stand for certificate IDs.
	gateway := mtls.Map{
		"*":                            "default-cert",
		"*.internal.example.com":       "internal-cert",
		"billing.example.com:8443":     "billing-cert",
		"api.*.example.com":            "regional-cert",
		"[2001:db8::10]:8443":          "ipv6-cert",
		"*.production.example.com":     "production-cert",
		"api.*.example.com:8443":       "regional-8443-cert",
		"Legacy.Example.COM.":          "legacy-cert",
		"10.0.0.7":                     "ip-cert",
		"*.*.example.com":              "two-labels-cert",
		"metrics.internal.example.com": "metrics-cert",
	}
	api := mtls.Map{"billing.example.com": "billing-api-cert"}

	r, err := mtls.NewResolver(api, gateway)
	if err != nil {
		panic(err)
	}
	for _, host := range []string{
		"billing.example.com:8443",     // API level first, any port
		"metrics.internal.example.com", // exact beats wildcard
		"db.internal.example.com:5432", // left wildcard, any port
		"api.eu.example.com:8443",      // middle wildcard, with a port first
		"api.production.example.com",   // longer literal run from the right wins
		"web.eu.example.com",           // two wildcards
		"LEGACY.example.com",           // case and trailing dot do not matter
		"[2001:db8:0::10]:8443",        // IPv6 in canonical form
		"10.0.0.7:9000",                // IP patterns match exactly
		"example.org",                  // the gateway default
	} {
		m, _ := r.Match(host)
		fmt.Printf("%-30s %-20s %s %s\n", host, m.Value, m.Level, m.Pattern)
	}

	_, err = mtls.NewResolver(mtls.Map{"https://api.example.com": "x"}, nil)
	fmt.Println(errors.Is(err, mtls.ErrInvalidPattern), err)
	// Output:
	// billing.example.com:8443       billing-api-cert     api billing.example.com
	// metrics.internal.example.com   metrics-cert         gateway metrics.internal.example.com
	// db.internal.example.com:5432   internal-cert        gateway *.internal.example.com
	// api.eu.example.com:8443        regional-8443-cert   gateway api.*.example.com:8443
	// api.production.example.com     production-cert      gateway *.production.example.com
	// web.eu.example.com             two-labels-cert      gateway *.*.example.com
	// LEGACY.example.com             legacy-cert          gateway Legacy.Example.COM.
	// [2001:db8:0::10]:8443          ipv6-cert            gateway [2001:db8::10]:8443
	// 10.0.0.7:9000                  ip-cert              gateway 10.0.0.7
	// example.org                    default-cert         gateway *
	// true mtls: invalid host pattern "https://api.example.com" (api level): has a scheme: write the host alone
}
