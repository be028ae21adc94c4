package certkit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
)

// The entry format: PEM text of a comment line, the CERTIFICATE blocks of
// the chain (leaf first) or one PUBLIC KEY block, then, when the entry has
// a private key, one "MTLS SEALED KEY" block holding Seal's output, and
// last an "MTLS CHECKSUM" block holding the SHA-256 of every byte before
// it. `openssl x509` reads the leaf of an entry.

const (
	entryComment     = "# mtls FileStore entry, format 1: see the documentation of FileStore\n"
	sealedBlockType  = "MTLS SEALED KEY"
	checksumType     = "MTLS CHECKSUM"
	checksumBeginTag = "-----BEGIN " + checksumType + "-----"
	checksumHead     = checksumBeginTag + "\nHash: SHA-256 of every byte before this block\n\n"
	checksumTail     = "\n-----END " + checksumType + "-----\n"
	checksumBlockLen = len(checksumHead) + (sha256.Size+2)/3*4 + len(checksumTail)
)

// Encode returns the entry text of d.
func Encode(d *Data) []byte {
	var b bytes.Buffer
	b.WriteString(entryComment)
	for _, der := range d.Chain {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if d.Leaf == nil {
		pem.Encode(&b, &pem.Block{Type: "PUBLIC KEY", Bytes: d.SPKI})
	}
	if d.Sealed != nil {
		pem.Encode(&b, &pem.Block{Type: sealedBlockType, Headers: map[string]string{
			"Cipher": "AES-256-GCM; nonce, ciphertext of PKCS#8 DER, tag; additional data: the ID",
			"KDF":    "Argon2id, parameters and salt in kdf.json",
		}, Bytes: d.Sealed})
	}
	b.Write(checksumBlock(sha256.Sum256(b.Bytes())))
	return b.Bytes()
}

func corrupt(id, why string) error {
	return fmt.Errorf("%w: %s (%s)", ErrCorrupt, id, why)
}

// Check checks the checksum of the entry text data of the entry named id,
// and returns the body it covers. Its error wraps ErrCorrupt.
func Check(id string, data []byte) (body []byte, err error) {
	data = bytes.TrimRight(data, " \t\r\n") // the block's final newline too
	i := len(data) - (checksumBlockLen - 1) // the block ends the entry
	if i < 0 || !bytes.HasPrefix(data[i:], []byte(checksumBeginTag)) {
		return nil, corrupt(id, "no checksum")
	}
	body = data[:i]
	if want := checksumBlock(sha256.Sum256(body)); !bytes.Equal(data[i:], want[:len(want)-1]) {
		return nil, corrupt(id, "checksum mismatch")
	}
	return body, nil
}

// checksumBlock returns the PEM block that ends an entry whose body has the
// given SHA-256, as pem.Encode would write it.
func checksumBlock(sum [sha256.Size]byte) []byte {
	b := make([]byte, 0, checksumBlockLen)
	b = append(b, checksumHead...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	return append(b, checksumTail...)
}

// Decode parses the checked body of the entry named id. Its error wraps
// ErrCorrupt.
func Decode(id string, body []byte) (*Data, error) {
	certs, pub, sealed, err := entryBlocks(id, body)
	if err != nil {
		return nil, err
	}
	var p *Parsed
	switch {
	case pub != nil && len(certs) == 0 && sealed == nil:
		if p, err = ParsePublicKey(pub); err != nil {
			return nil, corrupt(id, err.Error())
		}
	case pub == nil && len(certs) > 0:
		leaf, err := ParseChain(certs)
		if err != nil {
			return nil, corrupt(id, err.Error())
		}
		p = fromChain(certs, leaf)
	default:
		return nil, corrupt(id, "no certificate or public key")
	}
	if p.ID != id {
		return nil, corrupt(id, "content does not match the name")
	}
	return NewData(p, p.Chain, sealed), nil
}

// entryBlocks returns the blocks of an entry's body.
func entryBlocks(id string, body []byte) (certs [][]byte, pub, sealed []byte, err error) {
	blocks := 0
	for rest := body; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		blocks++
		switch {
		case b.Type == "CERTIFICATE" && len(certs) < MaxChainLen:
			certs = append(certs, b.Bytes)
		case b.Type == "PUBLIC KEY" && pub == nil:
			pub = b.Bytes
		case b.Type == sealedBlockType && sealed == nil:
			sealed = b.Bytes
		default:
			return nil, nil, nil, corrupt(id, "unexpected block "+Truncate(b.Type, 40))
		}
	}
	if blocks != bytes.Count(body, []byte("-----BEGIN")) {
		return nil, nil, nil, corrupt(id, "malformed block")
	}
	return certs, pub, sealed, nil
}
