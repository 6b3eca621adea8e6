package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestPage(t *testing.T) {
	h, _ := newTestHandler(t, "http://127.0.0.1:1", nil)
	rec := do(t, h, "GET", "/", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /: status %d, want 200", rec.Code)
	}
	if got, want := rec.Header().Get("Content-Type"), "text/html; charset=utf-8"; got != want {
		t.Errorf("Content-Type: got %q, want %q", got, want)
	}
	page := rec.Body.String()
	for _, want := range []string{
		`id="clock-time"`, `id="clock-date"`, `id="clock-status"`, `data-state="loading"`,
		`src="app.js"`, `href="style.css"`, `href="favicon.svg"`,
	} {
		mustContain(t, "page", page, want)
	}
	// A strict CSP blocks inline code: every script must be a file, and no style inline.
	scripts := regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if len(scripts) == 0 || len(scripts) != strings.Count(page, "<script") {
		t.Errorf("page has %d well-formed script elements of %d", len(scripts), strings.Count(page, "<script"))
	}
	for _, m := range scripts {
		if !strings.Contains(m[1], `src="`) || strings.TrimSpace(m[2]) != "" {
			t.Errorf("page has an inline script: %q", m[0])
		}
	}
	for _, bad := range []string{"<style", " style=", " onload=", " onclick=", "javascript:", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q (inline code or an external resource)", bad)
		}
	}

	for _, tc := range []struct{ path, contentType, contains string }{
		{"/index.html", "text/html; charset=utf-8", `id="clock-time"`},
		{"/app.js", "text/javascript; charset=utf-8", `fetch("clock"`},
		{"/style.css", "text/css; charset=utf-8", "monospace"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		rec := do(t, h, "GET", tc.path, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tc.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.path, got, "no-cache")
		}
		mustContain(t, tc.path, rec.Body.String(), tc.contains)
	}

	head := do(t, h, "HEAD", "/app.js", nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD /app.js: status %d, body %d bytes, Content-Length %q; want 200, 0, set",
			head.Code, head.Body.Len(), head.Header().Get("Content-Length"))
	}
}

// wantCSP is the policy every answer carries: same-origin files and fetches only, no framing.
const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func TestSecurityHeaders(t *testing.T) {
	up := startUpstream(t, nil)
	h, _ := newTestHandler(t, up.URL, nil)
	want := map[string]string{
		"Content-Security-Policy": wantCSP,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	for _, tc := range []struct{ method, target string }{
		{"GET", "/"},
		{"GET", "/app.js"},
		{"GET", "/style.css"},
		{"GET", "/favicon.svg"},
		{"GET", "/healthz"},
		{"GET", "/clock"},
		{"HEAD", "/clock"},
		{"GET", "/nope"},
		{"POST", "/clock"},
		{"GET", "/clock/../metrics"},
	} {
		rec := do(t, h, tc.method, tc.target, nil)
		for name, value := range want {
			if got := rec.Header().Values(name); len(got) != 1 || got[0] != value {
				t.Errorf("%s %s (status %d): %s = %q, want [%q]", tc.method, tc.target, rec.Code, name, got, value)
			}
		}
		// frame-ancestors in the CSP replaces it; the upstream's must not pass either.
		if got := rec.Header().Values("X-Frame-Options"); got != nil {
			t.Errorf("%s %s: X-Frame-Options %q, want none", tc.method, tc.target, got)
		}
	}
}

func TestETag(t *testing.T) {
	h, _ := newTestHandler(t, "http://127.0.0.1:1", nil)
	for _, path := range []string{"/", "/app.js", "/style.css", "/favicon.svg"} {
		first := do(t, h, "GET", path, nil)
		etag := first.Header().Get("ETag")
		if !regexp.MustCompile(`^"[A-Za-z0-9_-]+"$`).MatchString(etag) {
			t.Fatalf("GET %s: ETag %q, want a quoted strong validator", path, etag)
		}
		gz := do(t, h, "GET", path, map[string]string{"Accept-Encoding": "gzip"}).Header().Get("ETag")
		if gz == etag {
			t.Errorf("GET %s: gzip and plain share the ETag %q", path, etag)
		}
		for _, tc := range []struct {
			inm, ae string
			want    int
		}{
			{etag, "", http.StatusNotModified},
			{"W/" + etag, "", http.StatusNotModified},
			{`"other", ` + etag, "", http.StatusNotModified},
			{"*", "", http.StatusNotModified},
			{gz, "gzip", http.StatusNotModified},
			{`"other"`, "", http.StatusOK},
			{gz, "", http.StatusOK},       // the gzip validator does not match the plain bytes
			{etag, "gzip", http.StatusOK}, // nor the plain one the gzip bytes
		} {
			hdr := map[string]string{"If-None-Match": tc.inm}
			if tc.ae != "" {
				hdr["Accept-Encoding"] = tc.ae
			}
			rec := do(t, h, "GET", path, hdr)
			if rec.Code != tc.want {
				t.Errorf("GET %s If-None-Match %s Accept-Encoding %q: status %d, want %d", path, tc.inm, tc.ae, rec.Code, tc.want)
			}
			if rec.Code == http.StatusNotModified && (rec.Body.Len() != 0 || rec.Header().Get("ETag") == "") {
				t.Errorf("GET %s: 304 with %d body bytes and ETag %q", path, rec.Body.Len(), rec.Header().Get("ETag"))
			}
		}
	}
}

func TestGzip(t *testing.T) {
	h, _ := newTestHandler(t, "http://127.0.0.1:1", nil)
	for _, path := range []string{"/", "/app.js", "/style.css", "/favicon.svg"} {
		plain := do(t, h, "GET", path, nil)
		if ce := plain.Header().Get("Content-Encoding"); ce != "" {
			t.Errorf("GET %s without Accept-Encoding: Content-Encoding %q, want none", path, ce)
		}
		if v := plain.Header().Get("Vary"); v != "Accept-Encoding" {
			t.Errorf("GET %s: Vary %q, want %q", path, v, "Accept-Encoding")
		}
		for _, ae := range []string{"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5", "*", "GZIP"} {
			rec := do(t, h, "GET", path, map[string]string{"Accept-Encoding": ae})
			if ce := rec.Header().Get("Content-Encoding"); ce != "gzip" {
				t.Errorf("GET %s Accept-Encoding %q: Content-Encoding %q, want gzip", path, ae, ce)
				continue
			}
			if v := rec.Header().Get("Vary"); v != "Accept-Encoding" {
				t.Errorf("GET %s gzip: Vary %q, want %q", path, v, "Accept-Encoding")
			}
			zr, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatalf("GET %s gzip: %v", path, err)
			}
			body, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("GET %s gzip: %v", path, err)
			}
			if !bytes.Equal(body, plain.Body.Bytes()) {
				t.Errorf("GET %s: gunzipped body differs from the plain one", path)
			}
		}
		for _, ae := range []string{"identity", "br", "gzip;q=0", "gzip; q=0.000, br", "deflate"} {
			rec := do(t, h, "GET", path, map[string]string{"Accept-Encoding": ae})
			if ce := rec.Header().Get("Content-Encoding"); ce != "" {
				t.Errorf("GET %s Accept-Encoding %q: Content-Encoding %q, want none", path, ae, ce)
			}
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"br", "gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=0.0"}, false},
		{[]string{"gzip;q=0.001"}, true},
		{[]string{"gzip ; Q=0"}, false},
		{[]string{"*;q=0"}, false},
		{[]string{"gzipx"}, false},
		{[]string{"identity;q=1, *;q=0.1"}, true},
	} {
		var values [][]byte
		for _, v := range tc.values {
			values = append(values, []byte(v))
		}
		if got := acceptsGzip(values); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
}

func TestNotFound(t *testing.T) {
	up := startUpstream(t, nil)
	h, _ := newTestHandler(t, up.URL, nil)
	for _, target := range []string{
		"/nope", "/metrics", "/clock/", "/clock/x", "/Clock", "/static/app.js", "/app.js/",
		"/index.htm", "/.env", "/healthz/x", "/%00", "/favicon.ico",
	} {
		rec := do(t, h, "GET", target, nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, rec.Code)
		}
	}
	if got := up.seen(); len(got) != 0 {
		t.Errorf("upstream saw %q, want nothing", got)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	up := startUpstream(t, nil)
	h, _ := newTestHandler(t, up.URL, nil)
	for _, target := range []string{"/clock", "/healthz", "/", "/app.js"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"} {
			rec := do(t, h, method, target, nil)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 405", method, target, rec.Code)
			}
			if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q, want %q", method, target, got, "GET, HEAD")
			}
		}
	}
	if got := up.seen(); len(got) != 0 {
		t.Errorf("upstream saw %q, want nothing", got)
	}
}

func TestHealthz(t *testing.T) {
	h, _ := newTestHandler(t, "http://127.0.0.1:1", nil)
	rec := do(t, h, "GET", "/healthz", nil)
	if rec.Code != http.StatusOK || rec.Body.String() != "ok" {
		t.Errorf("GET /healthz: %d %q, want 200 %q", rec.Code, rec.Body.String(), "ok")
	}
}
