package mtls

import "time"

// EventKind says what an [Event] reports.
type EventKind uint8

const (
	// CertificateChosen: a handshake presented the host's client
	// certificate (CertificateID is empty when the host has none).
	CertificateChosen EventKind = iota + 1
	// PinMismatch: an upstream's leaf matched none of its pins (Err says
	// which key it presented).
	PinMismatch
	// PoolRetired: a host's connection pool was retired because its TLS
	// identity changed, the cache bound was reached, or the selector closed.
	PoolRetired
	// FailedClosed: a request was refused before any connection because the
	// certificate or the pins its host maps to cannot be used now (not
	// found, expired, no private key, unreadable). Level, Pattern and Value
	// say which mapping, Err why. A Server reports it for a handshake whose
	// server certificate cannot be used.
	FailedClosed
	// ServerCertificateChosen: a Server's handshake presented the
	// certificate of its SNI (Host: the SNI and the listener's port).
	ServerCertificateChosen
	// ClientRefused: a Server refused a client certificate, at the TLS
	// level or, for API, at the HTTP level. Host is the SNI,
	// CertificateID the client's, Err why.
	ClientRefused
	// CertificateExpiring: a certificate the policy names expires within
	// the warning horizon ([WithExpiryWarning]); reported once per
	// certificate. CertificateID, NotAfter, Field, Level, Pattern and
	// Value say which.
	CertificateExpiring
	// CertificateExpired: a certificate the policy names has expired;
	// reported once per certificate.
	CertificateExpired
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case CertificateChosen:
		return "certificate chosen"
	case PinMismatch:
		return "pin mismatch"
	case PoolRetired:
		return "pool retired"
	case FailedClosed:
		return "failed closed"
	case ServerCertificateChosen:
		return "server certificate chosen"
	case ClientRefused:
		return "client refused"
	case CertificateExpiring:
		return "certificate expiring"
	case CertificateExpired:
		return "certificate expired"
	}
	return "unknown event"
}

// Event reports something a Selector or a Server did, for logs and
// metrics. It never holds key material.
type Event struct {
	Kind          EventKind
	Host          string    // normalised host:port
	CertificateID string    // the client certificate's ID, if any
	Field         string    // expiry events: the policy's field that names the certificate
	Level         Level     // FailedClosed and expiry events: the level of the mapping
	Pattern       string    // FailedClosed and expiry events: the pattern, as written
	Value         string    // FailedClosed: the value as written; inline PEM by its SHA-256 instead
	API           string    // ClientRefused: the API whose rules refused, "" for the policy's
	NotAfter      time.Time // expiry events: when the certificate expires
	Err           error     // PinMismatch, FailedClosed and ClientRefused: why
	// Reason is Err in a word, for metrics: "not_found", "expired",
	// "no_private_key", "decrypt", "invalid_value", "unreadable",
	// "pin_mismatch", "closed"; for ClientRefused also "no_certificate",
	// "untrusted" (not chaining to the client CAs), "too_deep",
	// "not_allowed", "unknown_api".
	Reason string
}
