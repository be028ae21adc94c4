// Package certapi serves Tyk's certificate API over any mtls.CertStore:
//
//	POST   /tyk/certs            PEM body   {"id": ID, "status": "ok", "message": "Certificate added"}
//	GET    /tyk/certs                       {"certs": [ID, ...]}
//	GET    /tyk/certs?mode=detailed         {"certs": [metadata, ...]}
//	GET    /tyk/certs/ID                    metadata
//	GET    /tyk/certs/ID1,ID2               [metadata, metadata]
//	DELETE /tyk/certs/ID                    {"status": "ok", "message": "removed"}
//
// Metadata is mtls.Metadata as JSON (id, fingerprint, has_private_key,
// issuer, subject, not_before, not_after, dns_names, is_ca), with Tyk's name
// has_private beside has_private_key. No answer ever holds a private key.
// Errors are JSON too: {"status": "error", "message": why}, with 400 for a
// body the store refuses, 404 for an unknown ID or path, 405 for another
// method, 413 for a body over the store's limit, and 500 for a store that
// fails.
//
// The Handler checks no credentials: put it behind RequireSecret, as a
// Tyk gateway does with its secret, and behind a check of client
// certificates where one is wanted.
package certapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mtlsgo/mtls"
)

// Path is where Tyk serves its certificate API.
const Path = "/tyk/certs"

// MaxBody bounds the PEM a POST may carry: the stores' limit of 1 MiB of
// PEM, plus room for text around the blocks.
const MaxBody = 1<<20 + 64<<10

// Handler serves Tyk's certificate API over a store.
type Handler struct {
	store mtls.CertStore
}

// New returns the Handler of store. Mount it at Path and Path + "/":
//
//	mux.Handle(certapi.Path, h)
//	mux.Handle(certapi.Path+"/", h)
func New(store mtls.CertStore) *Handler { return &Handler{store: store} }

// Meta is the metadata of a stored entry as the API answers it: the
// store's Metadata, and Tyk's field name has_private.
type Meta struct {
	mtls.Metadata
	HasPrivate bool `json:"has_private"`
}

// Status is the answer of a POST, a DELETE, and of an error.
type Status struct {
	ID      string `json:"id,omitempty"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// metadataStore is a CertStore that gives metadata without decrypting.
type metadataStore interface {
	Metadata(ctx context.Context, id string) (mtls.Metadata, error)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, Path)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		Error(w, http.StatusNotFound, "not found")
		return
	}
	rest = strings.TrimPrefix(rest, "/")
	if h.store == nil {
		Error(w, http.StatusInternalServerError, "no certificate store")
		return
	}
	switch {
	case rest == "" && r.Method == http.MethodPost:
		h.add(w, r)
	case rest == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.list(w, r)
	case rest == "":
		w.Header().Set("Allow", "GET, HEAD, POST")
		Error(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+Path)
	case strings.Contains(rest, "/"):
		Error(w, http.StatusNotFound, "not found")
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		h.get(w, r, rest)
	case r.Method == http.MethodDelete:
		h.delete(w, r, rest)
	default:
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		Error(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+Path+"/ID")
	}
}

func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		Error(w, http.StatusRequestEntityTooLarge, "the body is over the limit of "+itoa(MaxBody)+" bytes")
		return
	case err != nil:
		Error(w, http.StatusBadRequest, "cannot read the body")
		return
	}
	id, err := h.store.Add(r.Context(), body)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, mtls.ErrClosed) || errors.Is(err, context.Canceled) {
			code = http.StatusInternalServerError
		}
		Error(w, code, message(err))
		return
	}
	writeJSON(w, http.StatusOK, Status{ID: id, Status: "ok", Message: "Certificate added"})
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	ids, err := h.store.List(r.Context())
	if err != nil {
		Error(w, http.StatusInternalServerError, message(err))
		return
	}
	if ids == nil {
		ids = []string{}
	}
	if r.URL.Query().Get("mode") != "detailed" {
		writeJSON(w, http.StatusOK, struct {
			Certs []string `json:"certs"`
		}{ids})
		return
	}
	metas := make([]Meta, 0, len(ids))
	for _, id := range ids {
		m, err := h.meta(r.Context(), id)
		if errors.Is(err, mtls.ErrNotFound) {
			continue // deleted meanwhile, or unreadable
		}
		if err != nil {
			Error(w, http.StatusInternalServerError, message(err))
			return
		}
		metas = append(metas, m)
	}
	writeJSON(w, http.StatusOK, struct {
		Certs []Meta `json:"certs"`
	}{metas})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, ids string) {
	list := strings.Split(ids, ",")
	metas := make([]Meta, 0, len(list))
	for _, id := range list {
		id = strings.TrimSpace(id)
		m, err := h.meta(r.Context(), id)
		if err != nil {
			storeError(w, err)
			return
		}
		metas = append(metas, m)
	}
	if len(metas) == 1 {
		writeJSON(w, http.StatusOK, metas[0])
		return
	}
	writeJSON(w, http.StatusOK, metas)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, id string) {
	if strings.Contains(id, ",") {
		Error(w, http.StatusBadRequest, "delete one certificate at a time")
		return
	}
	if err := h.store.Delete(r.Context(), id); err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Status{Status: "ok", Message: "removed"})
}

// meta returns the metadata of id, from the store's Metadata when it has
// one (which decrypts nothing), else from Get.
func (h *Handler) meta(ctx context.Context, id string) (Meta, error) {
	var md mtls.Metadata
	if ms, ok := h.store.(metadataStore); ok {
		m, err := ms.Metadata(ctx, id)
		if err != nil {
			return Meta{}, err
		}
		md = m
	} else {
		c, err := h.store.Get(ctx, id)
		if err != nil {
			return Meta{}, err
		}
		md = c.Metadata
	}
	return Meta{Metadata: md, HasPrivate: md.HasPrivateKey}, nil
}

func storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, mtls.ErrNotFound) {
		Error(w, http.StatusNotFound, message(err))
		return
	}
	Error(w, http.StatusInternalServerError, message(err))
}

// message is an error of package mtls for a client: without its "mtls: "
// prefix. The store's errors never hold key material.
func message(err error) string {
	return strings.TrimPrefix(err.Error(), "mtls: ")
}

// Error answers code with {"status": "error", "message": msg}.
func Error(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Status{Status: "error", Message: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"status":"error","message":"cannot encode the answer"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func itoa(n int) string { return strconv.Itoa(n) }

// Header is the header in which Tyk's admin APIs take the secret.
const Header = "X-Tyk-Authorization"

// RequireSecret returns next behind Tyk's check of the gateway secret:
// a request whose X-Tyk-Authorization header is not secret (compared in
// constant time) gets 403 and a JSON error. With an empty secret the API is
// off: every request gets 404.
func RequireSecret(secret string, next http.Handler) http.Handler {
	want := []byte(secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(want) == 0 {
			Error(w, http.StatusNotFound, "not found")
			return
		}
		got := []byte(r.Header.Get(Header))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			Error(w, http.StatusForbidden, "Attempted administrative access with invalid or missing key!")
			return
		}
		next.ServeHTTP(w, r)
	})
}
