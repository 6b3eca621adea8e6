package main

// The header names and values clock-web writes, as the bytes fasthttp copies. The names are
// canonical, so that ResponseHeader.SetCanonical takes them as they are.
var (
	// The security headers of every response. The page has no inline script or style, so
	// the CSP allows only same-origin files and same-origin fetches. There is no
	// X-Frame-Options: the CSP's frame-ancestors replaces it in every browser that is still
	// maintained.
	hdrCSPName      = []byte("Content-Security-Policy")
	hdrCSP          = []byte("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hdrNosniffName  = []byte("X-Content-Type-Options")
	hdrNosniff      = []byte("nosniff")
	hdrReferrerName = []byte("Referrer-Policy")
	hdrNoReferrer   = []byte("no-referrer")

	hdrCacheControl = []byte("Cache-Control")
	// no-store is on every /clock answer and every error: a cached time is a wrong time.
	hdrNoStore = []byte("no-store")
	// no-cache is on the page's files: kept, but revalidated at every load.
	hdrNoCache = []byte("no-cache")

	hdrTextPlainCT    = []byte("text/plain; charset=utf-8")
	hdrAllowName      = []byte("Allow")
	hdrAllowGetHead   = []byte("GET, HEAD")
	hdrVaryName       = []byte("Vary")
	hdrAcceptEnc      = []byte("Accept-Encoding")
	hdrETagName       = []byte("ETag")
	hdrContentEncName = []byte("Content-Encoding")
	hdrGzip           = []byte("gzip")
)
