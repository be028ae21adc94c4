package tykconf

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview2UnimplementedRestrictionsAreNamed: the package documentation
// promises that "a field which would change security in Tyk and which this
// package's users do not implement (another authentication mode, IP allow
// and block lists, endpoint allow and block lists, ...) is named in a
// warning". Tyk refuses these requests, and a gateway built on this
// package forwards them, without a word:
//
//   - extended_paths.internal: Tyk's internal endpoints answer only Tyk's
//     own loops (tyk://self/...), never an external client;
//   - a version whose "expires" is past: Tyk answers 403 "Api Version has
//     expired";
//   - not_versioned false with a version header: a request without a known
//     version gets 403 "Version information not found";
//   - custom_middleware pre and post hooks (JSVM or coprocess plugins),
//     which are where Tyk users put their own request checks (only
//     enable_coprocess_auth, the auth hook, is named).
//
// Root cause: apiWarnings (and apiJSON, which did not read these fields);
// now warnings.go (endpointWarnings, versionWarnings, pluginWarnings) and
// api.go (apiJSON).
func TestReview2UnimplementedRestrictionsAreNamed(t *testing.T) {
	base := `"api_id": "a", "active": true, "use_keyless": true, "proxy": {"listen_path": "/a/", "target_url": "https://up"}`
	for _, tc := range []struct {
		name, fields, field string
	}{
		{"internal endpoint", `"version_data": {"not_versioned": true, "versions": {"Default": {"use_extended_paths": true,
			"extended_paths": {"internal": [{"path": "/admin", "method": "GET"}]}}}}`, "internal"},
		{"expired version", `"version_data": {"not_versioned": false, "versions": {"v1": {"name": "v1", "expires": "2001-01-01 00:00"}}},
			"definition": {"location": "header", "key": "x-api-version"}`, "expires"},
		{"versioned API", `"version_data": {"not_versioned": false, "versions": {"v1": {"name": "v1"}}},
			"definition": {"location": "header", "key": "x-api-version"}`, "not_versioned"},
		{"request plugins", `"custom_middleware": {"driver": "otto", "pre": [{"name": "checkCaller", "path": "middleware/check.js"}]}`, "custom_middleware"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAPI("apps/a.json", []byte("{"+base+", "+tc.fields+"}"))
			require.NoError(t, err)
			assert.Contains(t, strings.Join(a.Warnings, "\n"), tc.field,
				"Tyk refuses requests by this field; the gateway forwards them without a warning: %q", a.Warnings)
		})
	}
}
