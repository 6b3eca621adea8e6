package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clock-app/clock/services/internal/deadline"
	"github.com/clock-app/clock/services/internal/logjson"
	"github.com/clock-app/clock/services/internal/rawio"
	"github.com/clock-app/clock/services/internal/serve"
)

// The caps on what the API may send back. clock-api answers /clock with an 18-byte body
// ("1732312345.123456\n") and about 150 bytes of headers; anything much larger is not a
// clock, and holding it would only let a broken or hostile upstream spend our memory.
const (
	// maxUpstreamBody leaves room for any float the API could print (a float64's shortest
	// form is at most 24 characters).
	maxUpstreamBody = 64
	// maxUpstreamHeaderBytes caps the status line and headers: the size of the read buffer
	// they must fit in, twenty times what clock-api sends.
	maxUpstreamHeaderBytes = 4 << 10
	// upstreamIdle is how long an unused connection to the API stays pooled: well under
	// clock-api's IDLE_TIMEOUT default (60s), so that the proxy, not the API, usually closes
	// it, and long enough for pages that poll twice a second to keep the pool warm.
	upstreamIdle = 30 * time.Second
	// sendWithReadWithin is how recently a pooled connection must have carried an answer for
	// its next request to go out with the wait for the answer (rawio's SendOnRead), one read
	// system call fewer. Past it the request is written the ordinary way, so that the read
	// Go tries first finds at once that the API closed the idle connection (FIN), even an
	// API whose network is gone and will never reset it (a stopped container). Within it the
	// API would have to close the connection and lose its network too: a stopped
	// container's network still reset requests 85-106 ms after its FIN (docs/MEASUREMENTS.md),
	// and the pods' network outlives every instance. Under load the pool hands out the
	// connection released last (LIFO): under wrk -c128 they were idle for less than this; a
	// page's twice a second is far past it.
	sendWithReadWithin = 10 * time.Millisecond
)

// clockProxy forwards GET and HEAD /clock to the API's /clock and copies back the body
// and nothing else.
//
// The hop is synchronous: the handler's goroutine writes the request on a pooled
// connection and parses the answer itself (fasthttp's Response), where http.Transport
// hands every exchange to a read and a write goroutine per connection and builds header
// maps to filter them again. Every page polls /clock twice a second, so this hop decides
// what a VM serves; the README's measurements have the costs of both.
type clockProxy struct {
	// client is the pool of connections to the API: it dials (DialTimeout), bounds the
	// connections and the wait for one (MaxConns, MaxConnWaitTimeout), and closes idle ones.
	// The exchange on a connection is the proxy's own (exchange).
	client *fasthttp.HostClient
	// get and head are the only requests ever sent, written by fasthttp once from the
	// configuration, never from the incoming request: each exchange sends the same bytes.
	get, head []byte
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
	isTLS := target.Scheme == "https"
	port := target.Port()
	switch {
	case port != "":
	case isTLS:
		port = "443"
	default:
		port = "80"
	}
	// The one address ever dialled; HostClient's Addr would also read a comma as a list.
	addr := net.JoinHostPort(target.Hostname(), port)

	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	client := &fasthttp.HostClient{
		Addr:  addr,
		IsTLS: isTLS,
		// Only ever the API's address: no HTTP_PROXY from the environment (fasthttp reads
		// none), no second address.
		DialTimeout: func(_ string, timeout time.Duration) (net.Conn, error) {
			// timeout is what is left of the exchange's deadline (0 for a dial made for a
			// request waiting on a full pool); the dial has its own shorter bound, so that a
			// dead API is a quick 502.
			if timeout <= 0 || timeout > cfg.ProxyDialTimeout {
				timeout = cfg.ProxyDialTimeout
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			c, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			// The exchange sets a deadline each time: the runtime gets a few a second. Reads
			// and writes are raw, as on the server's side (serve.LimitListener).
			return deadline.Lazy(rawio.Wrap(c)), nil
		},
		TLSConfig: &tls.Config{ServerName: target.Hostname(), MinVersion: tls.VersionTLS12},
		// At most one /clock is in flight per browser connection, and the server holds at
		// most serve.MaxConns of those: the pool never makes a request wait, and if it ever
		// did, the wait is part of the one deadline (504).
		MaxConns:           serve.MaxConns,
		MaxConnWaitTimeout: cfg.ProxyTimeout,
		// The exchange sets one deadline on the connection (exchange); these bound a TLS
		// handshake, which starts when the exchange's dial does.
		ReadTimeout:         cfg.ProxyTimeout,
		WriteTimeout:        cfg.ProxyTimeout,
		MaxIdleConnDuration: upstreamIdle,
		// The connection released last goes out first: under load it was idle for a few
		// milliseconds at most (sendWithReadWithin), and the ones left over age out
		// (upstreamIdle).
		ConnPoolStrategy: fasthttp.LIFO,
		ReadBufferSize:   maxUpstreamHeaderBytes,
	}

	p := &clockProxy{
		client:   client,
		timeout:  cfg.ProxyTimeout,
		upstream: target.Redacted(),
		logger:   logger,
	}
	for _, r := range []struct {
		raw    *[]byte
		method string
	}{{&p.get, fasthttp.MethodGet}, {&p.head, fasthttp.MethodHead}} {
		req := &fasthttp.Request{}
		req.SetRequestURI(clockURL.String())
		req.Header.SetMethod(r.method)
		// Not fasthttp's default; nothing else of the browser's is sent, neither its cookies
		// nor its headers of any size.
		req.Header.SetUserAgent("clock-web")
		if len(req.URI().Host()) == 0 {
			return nil, fmt.Errorf("API_URL %q: no host in %s", target.Redacted(), clockURL)
		}
		var b bytes.Buffer
		if _, err := req.WriteTo(&b); err != nil {
			return nil, fmt.Errorf("API_URL %q: %w", target.Redacted(), err)
		}
		*r.raw = b.Bytes()
	}
	return p, nil
}

// Reasons an answer from the API is refused. They go to the log only; the browser gets a
// generic 502.
var (
	errUpstreamTooLarge = fmt.Errorf("upstream body over %d bytes", maxUpstreamBody)
	errUpstreamHeaders  = fmt.Errorf("upstream status line and headers exceeded %d bytes", maxUpstreamHeaderBytes)
	errUpstreamEncoded  = errors.New("upstream body has a Content-Encoding")
	errUpstreamNoAnswer = errors.New("upstream closed the connection before answering (EOF)")
	errUpstreamCut      = errors.New("upstream closed the connection mid-answer: unexpected EOF")
)

// serve forwards one GET or HEAD /clock (the route checked the method).
func (p *clockProxy) serve(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetCanonical(hdrCacheControl, hdrNoStore)
	// A GET or HEAD has no body to give the API. Refusing it, rather than dropping it, tells
	// a client that sends one that it is wrong; closing the connection spares the server
	// reading the next request after a body it may not have read whole.
	// ContentLength is -1 for a chunked body, -2 for none (fasthttp's "identity").
	if n := ctx.Request.Header.ContentLength(); n > 0 || n == -1 {
		ctx.SetConnectionClose()
		serve.Linger(ctx.Conn())
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge)
		return
	}

	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(res)
	if err := p.exchange(ctx.IsHead(), res); err != nil {
		p.failExchange(ctx, err)
		return
	}
	if err := checkAnswer(&res.Header); err != nil {
		p.fail(ctx, fasthttp.StatusBadGateway, err)
		return
	}

	h.SetContentTypeBytes(hdrTextPlainCT)
	if ctx.IsHead() {
		// The one thing of the upstream's that crosses besides the body: its length. A
		// GET's is written by fasthttp from the body itself.
		if n := res.Header.ContentLength(); n >= 0 {
			ctx.Response.SkipBody = true
			h.SetContentLength(n)
		}
		return
	}
	ctx.SetBody(res.Body())
}

// exchange sends the GET's bytes, or the HEAD's when head is set, to the API and reads the
// answer into res, under one deadline for the dial, the request, the headers and the body;
// the dial has its own shorter one. A request goes again on another connection only when a
// pooled one turns out closed before the API answered; each retry drops that connection, so
// the pool and the deadline bound them.
func (p *clockProxy) exchange(head bool, res *fasthttp.Response) error {
	req := p.get
	if head {
		req = p.head
	}
	due, left := time.Now().Add(p.timeout), p.timeout
	for attempts := 0; ; attempts++ {
		retry, err := p.roundTrip(req, head, res, due, left)
		if err == nil || !retry || attempts >= serve.MaxConns {
			return err
		}
		left = time.Until(due)
	}
}

// roundTrip is one attempt of exchange, on a pooled or new connection, with what is left
// until the deadline.
func (p *clockProxy) roundTrip(req []byte, head bool, res *fasthttp.Response, due time.Time, left time.Duration) (retry bool, err error) {
	if left <= 0 {
		return false, fasthttp.ErrTimeout
	}
	cc, err := p.client.AcquireConn(left, false)
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	pooled := !cc.LastUseTime().IsZero()

	written := false
	err = conn.SetDeadline(due)
	if err == nil {
		// Nothing to buffer: the request is whole, and one write sends it; on a connection
		// that just answered, the read of the answer does (sendWithReadWithin). The attempt
		// began at due - left.
		justAnswered := pooled && due.Add(-left).Sub(cc.LastUseTime()) < sendWithReadWithin
		if s, ok := sendsWithRead(conn); ok && justAnswered {
			s.SendOnRead(req)
		} else {
			_, err = conn.Write(req)
		}
		written = err == nil
	}
	if err == nil {
		res.Reset()
		// A missing Content-Type stays missing, instead of fasthttp's default text/plain.
		res.Header.SetNoDefaultContentType(true)
		res.SkipBody = head
		// Only Content-Type, Content-Encoding and Content-Length are looked at, and fasthttp
		// matches those case-insensitively: the other names need no canonical form.
		res.Header.DisableNormalizing()
		br := p.client.AcquireReader(conn)
		err = res.ReadLimitBody(br, maxUpstreamBody)
		p.client.ReleaseReader(br)
	}

	// A connection in any state but between two answers is never pooled.
	if err != nil || res.ConnectionClose() {
		p.client.CloseConn(cc)
	} else {
		p.client.ReleaseConn(cc)
	}
	if err == nil || !pooled {
		return false, err
	}
	// The API may close an idle connection just as it is reused: the request then fails to
	// be written, or the answer ends before its first byte (fasthttp reports io.EOF), or, when
	// the request had already reached the API's socket unread, the kernel resets the
	// connection (what an API instance draining for a release does to its idle connections:
	// test:vm saw one 502 from it). Nothing was answered, so another connection may try;
	// anything else is the API's answer.
	var netErr net.Error
	timedOut := errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, fasthttp.ErrTimeout)
	reset := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	return !timedOut && (!written || err == io.EOF || reset), err
}

// sendsWithRead returns the raw layer of a connection dialled to the API (deadline.Lazy over
// rawio.Wrap), which can send a request with the wait for its answer; not over TLS, nor
// where rawio had no socket to work with.
func sendsWithRead(c net.Conn) (interface{ SendOnRead([]byte) }, bool) {
	lazy, ok := c.(*deadline.Conn)
	if !ok {
		return nil, false
	}
	s, ok := lazy.Conn.(interface{ SendOnRead([]byte) })
	return s, ok
}

// checkAnswer refuses every answer but a 200 text/plain of at most maxUpstreamBody bytes
// (for a HEAD, the declared length; a GET's body was capped while it was read).
func checkAnswer(res *fasthttp.ResponseHeader) error {
	if res.StatusCode() != http.StatusOK {
		return fmt.Errorf("upstream status %d", res.StatusCode())
	}
	if ct := res.ContentType(); !isTextPlain(ct) {
		values := []string{}
		if len(ct) > 0 {
			values = append(values, string(ct))
		}
		return fmt.Errorf("upstream Content-Type %q, want text/plain", values)
	}
	if len(res.ContentEncoding()) > 0 {
		return errUpstreamEncoded
	}
	if res.ContentLength() > maxUpstreamBody {
		return errUpstreamTooLarge
	}
	return nil
}

// isTextPlain reports whether a Content-Type value is text/plain, with any parameters (the
// media type is case-insensitive, RFC 9110 8.3.1). fasthttp keeps the last of repeated
// Content-Type lines.
func isTextPlain(value []byte) bool {
	mt, _, _ := bytes.Cut(value, []byte(";"))
	return bytes.EqualFold(bytes.TrimSpace(mt), []byte("text/plain"))
}

// fail answers a generic error page and logs the cause, which the browser never sees.
func (p *clockProxy) fail(ctx *fasthttp.RequestCtx, status int, err error) {
	p.logger.LogAttrs(ctx, slog.LevelWarn, "proxy error",
		slog.String("upstream", p.upstream),
		slog.Int("status", status),
		// The cause may quote the upstream's own bytes (a status line, a Content-Type).
		slog.String("error", logjson.Cut(err.Error())))
	writeError(ctx, status)
}

// failExchange answers an error of the exchange itself; a 504's line names the setting.
func (p *clockProxy) failExchange(ctx *fasthttp.RequestCtx, err error) {
	status, cause := exchangeStatus(err)
	if status == fasthttp.StatusGatewayTimeout {
		cause = fmt.Errorf("no whole answer within CLOCK_WEB_PROXY_TIMEOUT (%s): %w", p.timeout, err)
	}
	p.fail(ctx, status, cause)
}

// writeError answers a body that says no more than the status line.
func writeError(ctx *fasthttp.RequestCtx, status int) {
	h := &ctx.Response.Header
	h.SetCanonical(hdrCacheControl, hdrNoStore)
	h.SetContentTypeBytes(hdrTextPlainCT)
	ctx.SetStatusCode(status)
	ctx.SetBodyString(fasthttp.StatusMessage(status) + "\n")
}

// exchangeStatus maps an error of the exchange to a status and the cause to log: a failed
// connection is a 502 (the API is down), the deadline a 504, anything else (a malformed or
// cut answer, over a cap) a 502.
func exchangeStatus(err error) (int, error) {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return http.StatusBadGateway, err
	}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return http.StatusBadGateway, errUpstreamTooLarge
	case errors.As(err, &small):
		return http.StatusBadGateway, errUpstreamHeaders
	case errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) ||
		errors.Is(err, fasthttp.ErrTLSHandshakeTimeout) || errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusGatewayTimeout, err
	case errors.Is(err, fasthttp.ErrConnectionClosed) || err == io.EOF:
		return http.StatusBadGateway, errUpstreamNoAnswer
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadGateway, errUpstreamCut
	case errors.As(err, &opErr):
		return http.StatusBadGateway, err // a reset or closed connection
	case isTLSError(err):
		return http.StatusBadGateway, fmt.Errorf("TLS with the API: %w", err)
	}
	return http.StatusBadGateway, fmt.Errorf("malformed HTTP answer from the API: %w", err)
}

// isTLSError reports an API whose certificate or handshake failed, so that it is not
// logged as a malformed answer.
func isTLSError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var record tls.RecordHeaderError
	return errors.As(err, &certErr) || errors.As(err, &alert) || errors.As(err, &record)
}
