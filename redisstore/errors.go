package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is wrapped by the errors of operations that needed Redis
// and could not reach it (connection refused or lost, timeout, a server
// loading its data or read-only after a failover). Writes fail with it;
// reads fail with it only when the entry is not cached. Match it with
// errors.Is.
var ErrUnavailable = errors.New("mtls: Redis is unavailable")

// errorf returns an error of this package: "mtls: " and the message, in
// which error arguments lose their own "mtls: " prefix (certkit.Errorf).
func errorf(format string, args ...any) error { return certkit.Errorf(format, args...) }

// fromKit returns an error of package certkit as the core stores report
// it: prefixed once, with the sentinel of package mtls that means the same.
// Errors that already have one (ours, or ErrUnavailable) keep their text.
func fromKit(err error) error {
	return certkit.Sentinels{NotFound: mtls.ErrNotFound, Decrypt: mtls.ErrDecrypt, Expired: mtls.ErrExpired}.Wrap(err)
}

// ctxErr returns ctx.Err() as the stores report it, or nil.
func ctxErr(ctx context.Context) error {
	if ctx == nil || ctx.Err() == nil {
		return nil
	}
	return errorf("%w", ctx.Err())
}

// unavailable reports whether err, returned by go-redis, means that Redis
// could not serve the command now, rather than that it refused it.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true // network, pool, timeout, closed client
	}
	msg := rerr.Error()
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// redisErr wraps an error of a Redis command made for what (such as "Add
// <id>"): ctx's error when ctx ended, ErrUnavailable when Redis could not
// serve it, else the error as is.
func redisErr(ctx context.Context, what string, err error) error {
	if cerr := ctxErr(ctx); cerr != nil {
		return errorf("%s: %w", what, cerr)
	}
	if unavailable(err) {
		return errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return errorf("%s: Redis: %w", what, err)
}

// errIDNotFound is the error of an ID with no entry; it wraps
// mtls.ErrNotFound.
func errIDNotFound(id string) error {
	return errorf("%w: no certificate or key with ID %s", mtls.ErrNotFound, id)
}

// describe names a value in an error message: quoted and cut when long, or
// by its SHA-256 when it may hold key material (PEM, several lines).
func describe(v string) string {
	if strings.Contains(v, "-----") || strings.ContainsAny(v, "\r\n") || len(v) > 256 {
		return fmt.Sprintf("value of %d bytes sha256:%s", len(v), certkit.Fingerprint([]byte(v)))
	}
	return strconv.Quote(certkit.Truncate(v, 80))
}
