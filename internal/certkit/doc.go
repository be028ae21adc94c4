// Package certkit holds what every certificate store of this module does
// alike, so that each store (the MemoryStore and FileStore of package mtls,
// the Redis store of module redisstore) makes the same IDs, keeps keys at
// rest the same way and reads the same entry format:
//
//   - pem.go: the PEM that CertStore.Add accepts, checked and parsed (Parse);
//   - data.go: an entry as stores keep it (Data) and the rule of Add over an
//     existing entry (Merge);
//   - seal.go: private keys sealed with AES-256-GCM under a key derived from
//     the store secret with Argon2id (Seal, Open, Keyring);
//   - kdf.go: the record of a store's key derivation (KDF: parameters, salt
//     and a check value that tells a wrong secret);
//   - entry.go: the checksummed PEM text of an entry (Encode, Check, Decode).
//
// It depends on no package of this module: errors that a store reports
// through a sentinel of package mtls are returned here as this package's
// own sentinels (ErrCorrupt, ErrWrongSecret, ErrSealed), for the store to
// wrap.
package certkit
