package redisstore

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
)

// The key derivation record (see the package documentation, "Key
// layout"): written once per scope, with SETNX, by the first Add of a
// private key; every node derives its AES-256 key from it and the secret,
// once, in its certkit.Keyring.

// keyTimeout bounds reading or creating the key derivation record.
const keyTimeout = 10 * time.Second

// loadKeys derives the store's AEAD from the key derivation record in
// Redis, creating the record (SETNX, so that it is written once) when
// create is set and there is none.
func (s *Store) loadKeys(secret []byte, create bool) (cipher.AEAD, error) {
	ctx, cancel := context.WithTimeout(context.Background(), keyTimeout)
	defer cancel()
	for range 2 {
		rec, err := s.rdb.Get(ctx, s.keys.kdf).Result()
		if err == nil {
			aead, err := certkit.OpenKDF([]byte(rec), secret)
			if err == nil {
				s.kdfRec.Store(&rec)
			}
			return aead, err
		}
		if !errors.Is(err, redis.Nil) {
			return nil, redisErr(ctx, "read the key derivation record "+s.keys.kdf, err)
		}
		if !create {
			return nil, fmt.Errorf("%w: Redis has no key derivation record %s", certkit.ErrDecrypt, s.keys.kdf)
		}
		newRec, aead, err := certkit.NewKDF(secret)
		if err != nil {
			return nil, err
		}
		ok, err := s.setNX(ctx, s.keys.kdf, string(newRec))
		if err != nil {
			return nil, redisErr(ctx, "create the key derivation record "+s.keys.kdf, err)
		}
		if ok {
			rec := string(newRec)
			s.kdfRec.Store(&rec)
			return aead, nil
		}
		// Another node created it first: use theirs.
	}
	return nil, errorf("cannot read or create the key derivation record %s", s.keys.kdf)
}

// restoreKDF puts back rec, the key derivation record a key being added
// was sealed under, which Redis no longer holds (it lost its data); it
// fails if another node made a new record meanwhile.
func (s *Store) restoreKDF(ctx context.Context, what, rec string) error {
	ok, err := s.setNX(ctx, s.keys.kdf, rec)
	if err != nil {
		return s.writeErr(ctx, what, err)
	}
	if !ok {
		return errorf("%s: the key derivation record %s is not the one this store derived its key from "+
			"(was it replaced?); open the store again to use the new one", what, s.keys.kdf)
	}
	return nil
}

// setNX sets key to value unless it exists (SETNX, which ACLs can allow
// alone, rather than SET NX).
func (s *Store) setNX(ctx context.Context, key, value string) (bool, error) {
	cmd := redis.NewBoolCmd(ctx, "setnx", key, value)
	s.rdb.Process(ctx, cmd)
	return cmd.Result()
}
