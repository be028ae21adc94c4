package main

import (
	"crypto/tls"

	"github.com/mtlsgo/mtls/mtlstest"
)

func mtlsServerConfig(leaf *mtlstest.Leaf) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
}
