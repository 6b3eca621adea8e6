package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clock-app/clock/services/internal/logjson"
)

// The caps on what the API may send back. clock-api answers /clock with an 18-byte body
// ("1732312345.123456\n") and about 150 bytes of headers; anything much larger is not a
// clock, and holding it would only let a broken or hostile upstream spend our memory.
const (
	// maxUpstreamBody leaves room for any float the API could print (a float64's shortest
	// form is at most 24 characters) and is small enough to be read into a pooled buffer.
	maxUpstreamBody = 64
	// maxUpstreamHeaderBytes is http.Transport's limit on the status line and headers,
	// twenty times what clock-api sends, a sixteenth of net/http's 64 KiB default.
	maxUpstreamHeaderBytes = 4 << 10
)

var (
	// hdrNoStore is on every /clock answer: a cached time is a wrong time.
	hdrNoStore = []string{"no-store"}
	hdrClose   = []string{"close"}
)

// clockProxy forwards GET and HEAD /clock to the API's /clock and copies back the body
// and nothing else.
//
// It is not an httputil.ReverseProxy: the hop has one route, one upstream and a body of
// about 20 bytes, and the rules below (no request body, no client header and no upstream
// header crosses, only a capped 200 text/plain answer comes back) are most of what
// ReverseProxy would otherwise do and then have undone. One RoundTrip and one capped read
// into a pooled buffer cost a quarter fewer allocations than ReverseProxy did here
// (BenchmarkClockProxy, fake upstream included: 96 to 73 a request, 7.8 to 6.0 KB), and
// ReverseProxy's own errors went to the log package's stderr as plain text.
type clockProxy struct {
	transport *http.Transport
	// get and head are the only requests ever sent: built once from the configuration,
	// never from the incoming request, and cloned with the request's context.
	get, head *http.Request
	timeout   time.Duration
	upstream  string // API_URL for the log, credentials redacted
	logger    *slog.Logger
}

// newClockProxy builds the handler of /clock. The route decides which requests get here;
// the proxy itself can only ever reach API_URL + /clock.
func newClockProxy(cfg config, logger *slog.Logger) (*clockProxy, error) {
	target, err := parseAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	clockURL := &url.URL{Scheme: target.Scheme, Host: target.Host, Path: strings.TrimSuffix(target.Path, "/") + "/clock"}

	dialer := &net.Dialer{Timeout: cfg.ProxyDialTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		// Never an HTTP_PROXY from the environment: the API is on a private network.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// Each request's context carries the one deadline of the whole exchange. The
		// transport may finish a dial after the request that started it gave up, to pool
		// it; the handshake timeout bounds that leftover work too.
		TLSHandshakeTimeout:    cfg.ProxyTimeout,
		MaxResponseHeaderBytes: maxUpstreamHeaderBytes,
		// A 20-byte body gains nothing from gzip, and an encoded answer is refused below.
		DisableCompression: true,
		// Every page polls twice a second: keep connections to the one upstream warm.
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}

	p := &clockProxy{
		transport: transport,
		timeout:   cfg.ProxyTimeout,
		upstream:  target.Redacted(),
		logger:    logger,
	}
	for _, r := range []struct {
		req    **http.Request
		method string
	}{{&p.get, http.MethodGet}, {&p.head, http.MethodHead}} {
		req, err := http.NewRequest(r.method, clockURL.String(), nil)
		if err != nil {
			return nil, err
		}
		// Not Go's default "Go-http-client/1.1"; nothing else of the browser's is sent,
		// neither its cookies nor its headers of any size.
		req.Header = http.Header{"User-Agent": {"clock-web"}}
		*r.req = req
	}
	return p, nil
}

// Reasons an answer from the API is refused. They go to the log only; the browser gets a
// generic 502.
var (
	errUpstreamTooLarge = fmt.Errorf("upstream body over %d bytes", maxUpstreamBody)
	errUpstreamEncoded  = errors.New("upstream body has a Content-Encoding")
)

// bodyBufs holds the buffers the API's answers are read into: one byte over the cap, so
// that a full buffer means too large.
var bodyBufs = sync.Pool{New: func() any { return new([maxUpstreamBody + 1]byte) }}

func (p *clockProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Cache-Control"] = hdrNoStore
	// A GET or HEAD has no body to give the API. Refusing it, rather than dropping it, tells
	// a client that sends one that it is wrong; closing the connection spares the server
	// reading the body it announced just to find the next request.
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		h["Connection"] = hdrClose
		writeError(w, http.StatusRequestEntityTooLarge)
		return
	}

	req := p.get
	if r.Method == http.MethodHead {
		req = p.head
	}
	// One deadline for dial, request, headers and body; the dial has its own shorter one so
	// that a dead API is a quick 502.
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	res, err := p.transport.RoundTrip(req.WithContext(ctx))
	if err != nil {
		p.failExchange(w, r, ctx, err)
		return
	}
	defer res.Body.Close() // unread bytes close the connection instead of pooling it

	if err := checkAnswer(res); err != nil {
		p.fail(w, r, http.StatusBadGateway, err)
		return
	}
	buf := bodyBufs.Get().(*[maxUpstreamBody + 1]byte)
	defer bodyBufs.Put(buf)
	n, err := readFull(res.Body, buf[:])
	if errors.Is(err, errUpstreamTooLarge) {
		p.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if err != nil {
		// The upstream broke mid-answer, or was too slow with its body.
		p.failExchange(w, r, ctx, err)
		return
	}

	h["Content-Type"] = hdrTextPlainCT
	if r.Method == http.MethodHead && res.ContentLength >= 0 {
		// The one thing of the upstream's that crosses besides the body: its length.
		// A GET's is set by net/http from the body itself.
		h["Content-Length"] = []string{strconv.FormatInt(res.ContentLength, 10)}
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(buf[:n]); err != nil {
		// Too late for another status: the access log has the 200, this line the abort.
		p.logFailure(r, statusClientClosedRequest, err)
	}
}

// checkAnswer refuses every answer but a 200 text/plain of at most maxUpstreamBody bytes,
// before its body is read.
func checkAnswer(res *http.Response) error {
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("upstream status %d", res.StatusCode)
	}
	if ct := res.Header["Content-Type"]; !isTextPlain(ct) {
		return fmt.Errorf("upstream Content-Type %q, want text/plain", ct)
	}
	if _, ok := res.Header["Content-Encoding"]; ok {
		return errUpstreamEncoded
	}
	if res.ContentLength > maxUpstreamBody {
		return errUpstreamTooLarge
	}
	return nil
}

// isTextPlain reports whether a Content-Type header is exactly one text/plain value, with
// any parameters (the media type is case-insensitive, RFC 9110 8.3.1).
func isTextPlain(values []string) bool {
	if len(values) != 1 {
		return false
	}
	mt, _, _ := strings.Cut(values[0], ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/plain")
}

// readFull reads r to its end into buf; filling buf means the body is larger than the
// caller wants. Unlike io.ReadFull it keeps a body's own io.ErrUnexpectedEOF (an upstream
// that closed before its Content-Length) apart from a short body.
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, errUpstreamTooLarge
}

// fail answers a generic error page and logs the cause, which the browser never sees.
func (p *clockProxy) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	p.logFailure(r, status, err)
	writeError(w, status)
}

// failExchange answers an error of the exchange itself; a 504's line names the setting.
func (p *clockProxy) failExchange(w http.ResponseWriter, r *http.Request, exchange context.Context, err error) {
	status := exchangeStatus(r.Context(), exchange, err)
	if status == http.StatusGatewayTimeout {
		err = fmt.Errorf("no whole answer within CLOCK_WEB_PROXY_TIMEOUT (%s): %w", p.timeout, err)
	}
	p.fail(w, r, status, err)
}

// logFailure logs a failed or aborted exchange as JSON, like every other line.
func (p *clockProxy) logFailure(r *http.Request, status int, err error) {
	p.logger.LogAttrs(r.Context(), slog.LevelWarn, "proxy error",
		slog.String("upstream", p.upstream),
		slog.Int("status", status),
		// The cause may quote the upstream's own bytes (a status line, a Content-Type).
		slog.String("error", logjson.Cut(err.Error())))
}

// writeError writes a body that says no more than the status line. Nobody reads a 499, but
// it is still written so that the access log records it.
func writeError(w http.ResponseWriter, status int) {
	h := w.Header()
	h["Cache-Control"] = hdrNoStore
	h["Content-Type"] = hdrTextPlainCT
	w.WriteHeader(status)
	if status != statusClientClosedRequest {
		_, _ = io.WriteString(w, http.StatusText(status)+"\n")
	}
}

// statusClientClosedRequest is nginx's code for a client that went away first; it is only
// ever logged, since nobody is left to read it.
const statusClientClosedRequest = 499

// exchangeStatus maps an error of the exchange: the client gone is a 499, a failed
// connection a 502 (the API is down), the exchange's deadline a 504, anything else (a
// malformed or cut answer, headers over the cap) a 502.
func exchangeStatus(client, exchange context.Context, err error) int {
	if client.Err() != nil {
		return statusClientClosedRequest
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return http.StatusBadGateway
	}
	var netErr net.Error
	if exchange.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
