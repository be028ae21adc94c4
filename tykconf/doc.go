// Package tykconf reads Tyk's own configuration files, tyk.conf and classic
// API definitions (one JSON object per file), into the policies of package
// mtls, so that a Tyk user's files work as they are under a gateway built
// on it (see examples/gateway).
//
// # Tyk's fields read
//
// tyk.conf: listen_address, listen_port, secret, app_path,
// enable_custom_domains, http_server_options.use_ssl,
// http_server_options.ssl_certificates (store IDs, file paths or inline
// PEM), http_server_options.min_version and max_version (769 to 772, as Tyk
// writes TLS versions), http_server_options.ssl_ciphers,
// http_server_options.enable_strict_routes, security.certificates.upstream,
// security.certificates.apis, security.pinned_public_keys,
// security.private_certificate_encoding_secret (Tyk falls back to secret),
// proxy_ssl_insecure_skip_verify, proxy_ssl_min_version and
// control_api_hostname.
//
// API definitions: api_id, name, active, internal, domain,
// proxy.listen_path, proxy.target_url, proxy.strip_listen_path,
// proxy.transport.ssl_insecure_skip_verify, use_mutual_tls_auth,
// client_certificates, upstream_certificates, pinned_public_keys and
// certificates (server certificates of the API's domain).
//
// Any other field is ignored, except that a field which would change
// security in Tyk and which this package's users do not implement is named
// in a warning ([Gateway.Warnings], [API.Warnings]): another
// authentication mode, IP allow and block lists, endpoint allow and block
// lists and internal endpoints, a versioned API (Tyk refuses a request
// without a known version, and every request of an expired version),
// plugins (custom_middleware hooks, a plugin bundle), upstream TLS settings
// per API, a control API port of its own...
//
// # Fields beyond Tyk
//
// An object "mtls" in tyk.conf:
//
//	"mtls": {
//	  "store_dir":          "certs",         // the FileStore directory of the certificate store; "": in memory
//	  "client_cas":         ["clients.pem"], // CAs of client certificates, for every API with use_mutual_tls_auth
//	  "verify_depth":       1,               // intermediates allowed between a client's leaf and those CAs (0: 1)
//	  "upstream_cas":       ["roots.pem"],   // roots that verify upstream servers; none: the system's
//	  "admin_client_cas":   ["admin.pem"],   // the certificate API and /tyk/reload also need a client certificate from these
//	  "admin_verify_depth": 1
//	}
//
// and an object "mtls" in an API definition, whose fields replace the
// gateway's for that API:
//
//	"mtls": {"client_cas": ["billing-clients.pem"], "verify_depth": 2, "upstream_cas": ["billing-roots.pem"]}
//
// The store secret is MTLS_STORE_SECRET when that variable is set and not
// empty, else security.private_certificate_encoding_secret, else secret.
//
// # Paths
//
// A relative path (app_path, store_dir, CA files, and certificate values that
// are file paths) is relative to the directory of the file that names it,
// so a configuration can be moved as a whole.
//
// # Errors
//
// A malformed file or a bad value is an *Error naming the file and the
// field by its JSON path, as in "apps/billing.json: proxy.target_url: ...".
package tykconf
