package redisstore

import (
	"github.com/mtlsgo/mtls/internal/certkit"
	"github.com/redis/go-redis/v9"
)

// The Redis key layout and the scripts that change it (see the package
// documentation, "Key layout"). Every key of a store's scope carries the
// same hash tag, so that a script or a transaction touching several of
// them runs on one Redis Cluster slot.

const seqField = "seq" // the field of the entries hash that counts changes

// keys are the Redis keys of one scope (prefix and organisation).
type keys struct {
	entries string // hash: fingerprint -> entry text; field "seq": the change counter
	log     string // stream: one entry per change
	kdf     string // string: the key derivation record
}

// newKeys returns the keys of the scope of prefix and org ("" for none).
func newKeys(prefix, org string) keys {
	tag := org
	if tag == "" {
		tag = "_" // not an organisation name: those are letters and digits
	}
	base := prefix + "{" + tag + "}:"
	return keys{entries: base + "certs", log: base + "log", kdf: base + "kdf"}
}

// putScript stores an entry if the entry is still what the caller merged
// with, counts the change and appends it to the change log, in one step.
//
//	KEYS: entries, log, kdf
//	ARGV: id, "1" when an entry was read (else "0"; go-redis sends a bool
//	      so), the entry read, the new entry, log length, node, the key
//	      derivation record the new entry's key was sealed under ("" when
//	      no key was sealed)
//
// It returns the change's number, -1 when the entry changed since it was
// read (the caller merges again), or -2 when the key derivation record is
// not the one the key was sealed under.
var putScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
	if cur ~= ARGV[3] then return -1 end
elseif cur then
	return -1
end
if ARGV[7] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[7] then return -2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'seq', tostring(seq), 'op', 'put', 'id', ARGV[1], 'node', ARGV[6])
return seq
`)

// delScript removes an entry, counts the change and appends it to the
// change log, in one step.
//
//	KEYS: entries, log
//	ARGV: id, log length, node
//
// It returns the change's number, or 0 when there was no such entry.
var delScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'seq', tostring(seq), 'op', 'del', 'id', ARGV[1], 'node', ARGV[3])
return seq
`)

// positionScript returns where the change log ends: the ID of its last
// entry ("0-0" when it has none) and the change counter.
//
//	KEYS: entries, log
var positionScript = redis.NewScript(`
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local id = '0-0'
if last[1] then id = last[1][1] end
return {id, redis.call('HGET', KEYS[1], 'seq') or '0'}
`)

// verifyScript checks that the change log still continues from where a
// node stopped reading it: the entry it read last is there with the
// change number it had, and the counter has not gone back. It returns 1
// when so, 0 when entries the node had not read are gone (trimmed, or the
// data lost) and the node must resynchronise.
//
//	KEYS: entries, log
//	ARGV: the ID of the last log entry read ("0-0" for none), its number
var verifyScript = redis.NewScript(`
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if seq < tonumber(ARGV[2]) then return 0 end
if ARGV[1] == '0-0' then return 1 end
local e = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if not e[1] then return 0 end
local f = e[1][2]
for i = 1, #f, 2 do
	if f[i] == 'seq' then
		if f[i + 1] == ARGV[2] then return 1 end
		return 0
	end
end
return 0
`)

// decodeEntry checks and parses the entry text v of fp (the text of a
// FileStore entry file). Its error wraps mtls.ErrNotFound.
func decodeEntry(fp, v string) (*certkit.Data, error) {
	body, err := certkit.Check(fp, []byte(v))
	if err != nil {
		return nil, fromKit(err)
	}
	d, err := certkit.Decode(fp, body)
	return d, fromKit(err)
}
