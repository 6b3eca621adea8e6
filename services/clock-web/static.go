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
	"strings"

	"github.com/valyala/fasthttp"
)

//go:embed static
var staticFS embed.FS

// asset is one embedded file with everything a response needs computed at start-up, so that
// serving it costs no hashing, compression or allocation per request.
type asset struct {
	plain, gzipped representation
	contentType    []byte
}

type representation struct {
	body []byte
	etag []byte // quoted strong validator of these exact bytes
}

// staticFiles serves the embedded page. It is a fixed table of exact paths, built once from
// the embed.FS: a request path is only ever a map key, never joined onto a directory.
//
// It replaces a file server for speed and exactness: fasthttp's FS and http.FileServerFS
// read from a directory, and FileServerFS has no ETag for embedded files (their ModTime is
// zero) and no precompressed variants.
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
	a := &asset{plain: newRepresentation(body, ""), contentType: []byte(ct)}
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
		body: body,
		etag: []byte(`"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + suffix + `"`),
	}
}

// serve answers the request with the asset: 405 to methods other than GET and HEAD, 304
// when If-None-Match holds its ETag, otherwise the gzip or plain bytes as Accept-Encoding
// allows. fasthttp writes Content-Length from the body, and leaves the body out of a HEAD.
func (a *asset) serve(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	if !ctx.IsGet() && !ctx.IsHead() {
		methodNotAllowed(ctx)
		return
	}
	rep := &a.plain
	if a.gzipped.body != nil && acceptsGzip(ctx.Request.Header.PeekAll(fasthttp.HeaderAcceptEncoding)) {
		rep = &a.gzipped
	}
	// no-cache: browsers keep the files but revalidate every time, which costs a 304 and
	// means a new release shows up at the next load.
	h.SetCanonical(hdrCacheControl, hdrNoCache)
	if a.gzipped.body != nil {
		h.SetCanonical(hdrVaryName, hdrAcceptEnc)
	}
	h.SetCanonical(hdrETagName, rep.etag)
	if inm := ctx.Request.Header.PeekAll(fasthttp.HeaderIfNoneMatch); inm != nil && etagMatch(inm, rep.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	if rep == &a.gzipped {
		h.SetCanonical(hdrContentEncName, hdrGzip)
	}
	h.SetContentTypeBytes(a.contentType)
	// The asset's own bytes, not a copy: they are never written to.
	ctx.Response.SetBodyRaw(rep.body)
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip: listed (or "*") with a
// q-value above zero. It does not allocate.
func acceptsGzip(values [][]byte) bool {
	for _, v := range values {
		for len(v) > 0 {
			var item []byte
			item, v, _ = bytes.Cut(v, comma)
			coding, params, _ := bytes.Cut(item, semicolon)
			coding = bytes.TrimSpace(coding)
			if !bytes.EqualFold(coding, gzipCoding) && !bytes.EqualFold(coding, xGzipCoding) && !bytes.Equal(coding, star) {
				continue
			}
			if !qZero(params) {
				return true
			}
		}
	}
	return false
}

// The tokens of Accept-Encoding and If-None-Match.
var (
	comma       = []byte(",")
	semicolon   = []byte(";")
	star        = []byte("*")
	gzipCoding  = []byte("gzip")
	xGzipCoding = []byte("x-gzip")
	weakPrefix  = []byte("W/")
	qName       = []byte("q")
	equals      = []byte("=")
)

// qZero reports whether the parameters of an Accept-Encoding item say q=0 (not acceptable).
func qZero(params []byte) bool {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, semicolon)
		name, val, _ := bytes.Cut(bytes.TrimSpace(p), equals)
		if !bytes.EqualFold(bytes.TrimSpace(name), qName) {
			continue
		}
		val = bytes.TrimSpace(val)
		if len(val) == 0 || val[0] != '0' {
			return false
		}
		return len(bytes.Trim(val[1:], ".0")) == 0
	}
	return false
}

// etagMatch implements the weak comparison of If-None-Match (RFC 9110, 13.1.2): "*" or any
// listed tag whose opaque part equals ours.
func etagMatch(values [][]byte, etag []byte) bool {
	for _, v := range values {
		for len(v) > 0 {
			var tag []byte
			tag, v, _ = bytes.Cut(v, comma)
			tag = bytes.TrimSpace(tag)
			if bytes.Equal(tag, star) || bytes.Equal(bytes.TrimPrefix(tag, weakPrefix), etag) {
				return true
			}
		}
	}
	return false
}
