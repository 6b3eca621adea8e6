package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// hdrNoStore is on every /clock answer: a cached time is a wrong time.
var hdrNoStore = []string{"no-store"}

// securityHeaderNames are the upstream's headers that would change how the browser treats
// the answer. The first three are set by our own middleware, so the browser sees one value,
// ours; X-Frame-Options is not sent at all (the CSP's frame-ancestors replaces it).
var securityHeaderNames = []string{
	"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
}

// newClockProxy forwards a request to the API's /clock, whatever the incoming path and query:
// the route decides which requests get here, the proxy itself can only ever reach API_URL +
// /clock. Errors become a generic 502 (or 504 on timeout); the detail goes to the log only.
func newClockProxy(cfg config, logger *slog.Logger) (http.Handler, error) {
	target, err := parseAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	clockPath := strings.TrimSuffix(target.Path, "/") + "/clock"

	dialer := &net.Dialer{Timeout: cfg.ProxyDialTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		// Never an HTTP_PROXY from the environment: the API is on a private network.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ResponseHeaderTimeout: cfg.ProxyTimeout,
		TLSHandshakeTimeout:   cfg.ProxyTimeout,
		ExpectContinueTimeout: time.Second,
		// Every page polls twice a second: keep connections to the one upstream warm.
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}

	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Not SetURL, which would join the incoming path and query onto the target: the
			// outgoing URL is built from the configuration alone.
			pr.Out.URL = &url.URL{Scheme: target.Scheme, Host: target.Host, Path: clockPath}
			pr.Out.Host = ""
			pr.SetXForwarded()
			// The API needs no browser credentials.
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
		},
		Transport: transport,
		// Without a pool ReverseProxy allocates a fresh 32 KiB copy buffer per request: most
		// of the proxy path's 40 KB/op and its GC work, for a body of about 20 bytes.
		BufferPool: proxyBuffers{},
		ModifyResponse: func(res *http.Response) error {
			for _, name := range securityHeaderNames {
				res.Header.Del(name)
			}
			res.Header.Del("Set-Cookie")
			// The route already set no-store; the upstream's copy would only repeat it.
			res.Header.Del("Cache-Control")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status := proxyErrorStatus(r.Context(), err)
			logger.LogAttrs(r.Context(), slog.LevelWarn, "proxy error",
				slog.String("upstream", target.Redacted()),
				slog.Int("status", status),
				slog.String("error", err.Error()))
			h := w.Header()
			h["Cache-Control"] = hdrNoStore
			h["Content-Type"] = hdrTextPlainCT
			h["X-Content-Type-Options"] = hdrNosniff
			w.WriteHeader(status)
			_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
		},
	}, nil
}

// statusClientClosedRequest is nginx's code for a client that went away first; it is only
// ever logged, since nobody is left to read it.
const statusClientClosedRequest = 499

// proxyErrorStatus maps a transport error: a failed connection is a 502 (the API is down),
// a timeout after connecting is a 504.
func proxyErrorStatus(ctx context.Context, err error) int {
	if ctx.Err() != nil {
		return statusClientClosedRequest
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return http.StatusBadGateway
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// proxyBuffers recycles the reverse proxy's copy buffers.
type proxyBuffers struct{}

var proxyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (proxyBuffers) Get() []byte { return *proxyBufferPool.Get().(*[]byte) }

func (proxyBuffers) Put(b []byte) { proxyBufferPool.Put(&b) }
