// Package redisstore is a certificate store of package mtls on Redis, for a
// fleet of proxies that share their certificates: each node opens a
// [Store] with [New] on the same Redis, prefix and organisation, passes it
// to mtls.New, and sees every other node's changes within about a round
// trip.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis.internal:6379"})
//	store, err := redisstore.New(ctx, rdb, []byte(os.Getenv("MTLS_STORE_SECRET")))
//	...
//	defer store.Close()
//	sel, err := mtls.New(store, mtls.Policy{Certificates: mtls.Map{"*.payments.internal": id}})
//
// It is a module of its own, github.com/mtlsgo/mtls/redisstore, so that
// users of the core never download a Redis client.
//
// # Guarantees
//
// A Store behaves as the core stores do (see [mtls.CertStore] and
// [mtls.MemoryStore]), and passes package storetest: the same IDs (the
// SHA-256 of the leaf, or of a bare key's SPKI), the same rules of Add
// (a key attached to a stored certificate, the longer chain kept, the same
// content again a no-op, the same rejections), the same metadata and the
// same errors ([mtls.ErrNotFound], [mtls.ErrExpired], [mtls.ErrDecrypt],
// [mtls.ErrClosed], each error's text starting "mtls: " once, never
// holding key material). Beyond them:
//
//   - Concurrency. A Store is safe for concurrent use by multiple
//     goroutines, and any number of Stores, in any number of processes,
//     may share a scope (a prefix and an organisation). Of two nodes
//     adding to one entry at once, neither loses what it added: Add
//     merges with the entry as Redis holds it and writes the result with
//     a compare-and-set script, merging again when another writer came
//     first. Two Deletes of one entry: one succeeds, the other is
//     [mtls.ErrNotFound].
//   - Atomicity. Each change (the entry, the scope's change counter and
//     the change log entry) is one Lua script: no reader, on any node,
//     sees half a certificate, or a change without its log entry.
//   - Reads. Get returns what the node's cache holds, without a round trip
//     to Redis (and, once the key is decrypted, without allocating); an
//     entry not cached is read with one HMGET and cached. The cache of
//     each node holds every entry it read (and a small record of each ID
//     it found absent), until a change of it reaches the node; an entry
//     read before a change is never cached after it (every entry carries
//     the number of the last change it reflects). List reads Redis each
//     time.
//   - Read your writes. A Get on the node that made a change, starting
//     after Add or Delete returned, sees the change; its subscribers
//     ([Store.Notify]) are called before Add or Delete returns.
//   - Other nodes see a change when their change log follower reads it: in
//     the time of a round trip to Redis while it is reachable (a median of
//     about 0.3 ms on loopback; see the README's benchmarks), after which
//     their cache no longer holds the old entry and their subscribers
//     (Selectors) have been called. Nodes may see a change at different
//     times; each node sees the changes of a scope in the order Redis
//     applied them.
//   - Outages. A node that cannot reach Redis keeps serving what it has
//     cached: no request whose certificate was cached fails. Reads of
//     entries not cached, List, and every write fail with an error
//     wrapping [ErrUnavailable] (a write that fails changed nothing,
//     unless Redis applied it and the reply was lost). The node reports
//     the outage through [WithEventHook] ([EventOutage]), retries with a
//     backoff of at most a second, and when Redis is back
//     ([EventRecovery]) applies the changes made meanwhile, and notifies
//     the IDs whose reads failed so that their users read them again.
//   - Resynchronisation. A node that cannot tell what changed while it did
//     not follow the log (its last entry was trimmed away because the
//     node lagged more than [WithLogLength] changes, or Redis lost its
//     data, or the log was deleted) drops its whole cache and notifies
//     every ID it handed out ([EventResync]). An idle node checks every
//     few seconds that the log still continues from its last entry, so
//     that even a Redis that lost its data and took no write since is
//     noticed.
//
// The zero Store is closed: its methods fail with [mtls.ErrClosed]. Every
// method honours its context: it fails with an error wrapping ctx.Err()
// when ctx is done before it starts (a nil ctx is the background one), and
// passes ctx to its Redis commands, which end at its deadline when the
// client was made with ContextTimeoutEnabled (otherwise go-redis's own
// timeouts apply). Reading or creating the key derivation record, once per
// Store, is bounded by ten seconds instead. A warm Get does no I/O.
//
// # Key layout
//
// The keys of a scope are those of its prefix ([WithPrefix], default
// "mtls:") and organisation ([WithOrg]; "_" for none), which is also the
// Redis Cluster hash tag, so that all of them are in one slot:
//
//	<prefix>{<org>}:certs  hash    field <fingerprint>: the entry (below);
//	                               field "seq": the number of the last change
//	<prefix>{<org>}:log    stream  one entry per change: seq, op ("put" or "del"),
//	                               id (the fingerprint), node (the writer's random name)
//	<prefix>{<org>}:kdf    string  the key derivation record, written once (SETNX)
//
// An entry is the text of a [mtls.FileStore] entry file: PEM blocks of the
// chain (or of a bare public key), the private key sealed with AES-256-GCM
// (a random nonce, the ciphertext and tag of its PKCS#8 DER; additional
// data: the entry's ID, with its organisation, so that a sealed key copied
// to another organisation does not open), and a SHA-256 checksum; `redis-cli
// HGET 'mtls:{_}:certs' <id> | openssl x509 -noout -subject` reads the leaf.
// The key derivation record is JSON: Argon2id parameters (time 3, memory 64
// MiB, 4 threads, the second recommendation of RFC 9106), a random 16-byte
// salt, and a check value sealed under the derived key, which tells a wrong
// secret ([mtls.ErrDecrypt]) before any key is opened. The secret itself,
// and private keys in clear, never reach Redis.
//
// # Change notification
//
// Pub/sub loses the messages of a node that is disconnected; a stream does
// not. Each change appends to the scope's stream, in the script that makes
// it, an entry numbered by the change counter (XADD with MAXLEN ~
// [DefaultLogLength]). Each Store follows the stream with XREAD BLOCK from
// the last entry it read, on a connection of rdb's pool: for each entry it
// drops the cached entry of the ID (unless the cache already holds a later
// read) and calls the subscribers, unless the Store made the change itself
// and called them already. A number that does not follow the last one
// applied means the node missed changes: it resynchronises. After losing
// Redis, before reading on, it checks that its last entry is still in the
// stream with the number it had; if not, it resynchronises.
//
// # Deployment
//
// rdb may be a *redis.Client (a single Redis, or a Sentinel failover client)
// or a *redis.ClusterClient; reads must go to the primary (no ReadOnly
// routing to replicas), so that a node never reads an entry older than a
// change it applied. Each Store keeps one connection of rdb's pool busy with
// its blocking read: size the pool for the Stores that share a client. The
// Redis user needs the key pattern of the prefix and the commands EVALSHA,
// EVAL, HGET, HMGET, HKEYS, GET, SETNX, XREAD, and, called by the scripts,
// HSET, HDEL, HINCRBY, XADD, XRANGE and XREVRANGE. Use persistence
// (appendonly) to keep the certificates across restarts; a Redis that lost
// its data is noticed by every node, which then serves what Redis holds.
// After a failover to a replica that had not received the last changes,
// nodes that had read them resynchronise. Redis's own access control and
// TLS protect the certificates and the change log; the private keys are
// protected by the secret whatever Redis's protection.
package redisstore
