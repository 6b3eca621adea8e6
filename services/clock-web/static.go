package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed static
var staticFS embed.FS

// asset is one embedded file with everything a response needs computed at start-up, so that
// serving it costs no hashing, compression or allocation per request.
type asset struct {
	plain, gzipped representation
	contentType    []string
}

type representation struct {
	body   []byte
	etag   []string // quoted strong validator of these exact bytes
	length []string
}

// Header values shared by every response. Each slice has len == cap, so a handler that Adds
// to one of these headers gets a fresh array instead of writing into the shared one.
var (
	hdrNoCache     = []string{"no-cache"}
	hdrVaryAE      = []string{"Accept-Encoding"}
	hdrGzip        = []string{"gzip"}
	hdrAllowGet    = []string{"GET, HEAD"}
	hdrTextPlainCT = []string{"text/plain; charset=utf-8"}
)

// staticFiles serves the embedded page. It is a fixed table of exact paths, built once from
// the embed.FS: a request path is only ever a map key, never joined onto a directory.
//
// It replaces http.FileServerFS for speed: FileServerFS has no ETag for embedded files (their
// ModTime is zero) and no precompressed variants, and does several allocations per request.
type staticFiles map[string]*asset

func newStaticFiles(fsys fs.FS) (staticFiles, error) {
	files := staticFiles{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		a, err := newAsset(name, body)
		if err != nil {
			return err
		}
		files["/"+name] = a
		if path.Base(name) == "index.html" {
			files["/"+strings.TrimSuffix(name, "index.html")] = a
		}
		return nil
	})
	return files, err
}

func newAsset(name string, body []byte) (*asset, error) {
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = http.DetectContentType(body)
	}
	a := &asset{plain: newRepresentation(body, ""), contentType: []string{ct}}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	// Tiny files can grow when compressed; then everyone gets the plain bytes.
	if buf.Len() < len(body) {
		a.gzipped = newRepresentation(buf.Bytes(), "-gz")
	}
	return a, nil
}

func newRepresentation(body []byte, suffix string) representation {
	sum := sha256.Sum256(body)
	return representation{
		body:   body,
		etag:   []string{`"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + suffix + `"`},
		length: []string{strconv.Itoa(len(body))},
	}
}

func (s staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := s[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	a.serve(w, r)
}

// serve answers r with the asset: 405 to methods other than GET and HEAD, 304 when
// If-None-Match holds its ETag, otherwise the gzip or plain bytes as Accept-Encoding allows.
func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h["Allow"] = hdrAllowGet
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	rep := &a.plain
	if a.gzipped.body != nil && acceptsGzip(r.Header["Accept-Encoding"]) {
		rep = &a.gzipped
	}
	// no-cache: browsers keep the files but revalidate every time, which costs a 304 and
	// means a new release shows up at the next load.
	h["Cache-Control"] = hdrNoCache
	if a.gzipped.body != nil {
		h["Vary"] = hdrVaryAE
	}
	h["Etag"] = rep.etag
	if inm := r.Header["If-None-Match"]; inm != nil && etagMatch(inm, rep.etag[0]) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if rep == &a.gzipped {
		h["Content-Encoding"] = hdrGzip
	}
	h["Content-Type"] = a.contentType
	h["Content-Length"] = rep.length
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(rep.body)
	}
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip: listed (or "*") with a
// q-value above zero. It does not allocate.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && !strings.EqualFold(coding, "x-gzip") && coding != "*" {
				continue
			}
			if !qZero(params) {
				return true
			}
		}
	}
	return false
}

// qZero reports whether the parameters of an Accept-Encoding item say q=0 (not acceptable).
func qZero(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		val = strings.TrimSpace(val)
		if val == "" || val[0] != '0' {
			return false
		}
		return strings.Trim(val[1:], ".0") == ""
	}
	return false
}

// etagMatch implements the weak comparison of If-None-Match (RFC 9110, 13.1.2): "*" or any
// listed tag whose opaque part equals ours.
func etagMatch(values []string, etag string) bool {
	for _, v := range values {
		for v != "" {
			var tag string
			tag, v, _ = strings.Cut(v, ",")
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
