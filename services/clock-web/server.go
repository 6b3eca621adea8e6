package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/valyala/fasthttp"

	"github.com/clock-app/clock/services/internal/logjson"
	"github.com/clock-app/clock/services/internal/serve"
)

// maxRequestBody is what the server reads of a request body before it answers 413: clock-web
// takes no body at all (the handlers refuse any), so this only decides how much of one is
// read before the answer.
const maxRequestBody = 1 << 10

// newServer is clock-web's HTTP server: fasthttp's, so that one goroutine per connection
// reads a request, answers it (the /clock hop included) and writes the answer, with no header
// maps, no per-request goroutine and no copies of the response headers. It holds the bounds
// the services share (serve.Config, serve.MaxConns, serve.MaxHeaderBytes); the README's
// measurements have its cost against net/http and nginx.
func newServer(cfg config, handler fasthttp.RequestHandler, logger *slog.Logger, idle func(net.Conn, bool)) *fasthttp.Server {
	srv := &fasthttp.Server{
		Handler:      handler,
		ErrorHandler: requestError,
		// The listener holds at most serve.MaxConns connections, and that is the bound on
		// memory. fasthttp counts goroutines instead, and one that has closed its connection
		// (freeing the listener's slot) is counted until it returns to the pool: at the same
		// cap, a connection accepted in that moment was answered 503
		// (TestFullCapNeverAnswers503). Twice the cap leaves room for a whole cap of them;
		// a goroutine without a connection holds no buffers.
		Concurrency: 2 * serve.MaxConns,
		// The request line and headers must fit in the read buffer: over it, 431. net/http
		// let through about 4 KiB past MaxHeaderBytes; this keeps that margin, so that a
		// request up to nginx's 8 KiB for one header line still passes.
		ReadBufferSize:     2 * serve.MaxHeaderBytes,
		MaxRequestBodySize: maxRequestBody,
		// A request has no body, so reading it is reading its headers: the slow-client
		// guard is READ_HEADER_TIMEOUT, and READ_TIMEOUT when that is shorter. The deadline
		// starts at the request's first byte; IDLE_TIMEOUT bounds the wait before it.
		ReadTimeout:  min(cfg.ReadHeaderTimeout, cfg.ReadTimeout),
		WriteTimeout: cfg.WriteTimeout,
		IdleTimeout:  cfg.IdleTimeout,
		// Only the headers the handlers set: no default Content-Type, no Server.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// A drain tells every client on a kept-alive connection, with its next answer, to
		// come back on a new one (to the instance that stays).
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
		// A malformed request is logged without the client's bytes in it.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{logger},
	}
	if idle != nil {
		srv.ConnState = func(c net.Conn, s fasthttp.ConnState) { idle(c, s == fasthttp.StateIdle) }
	}
	return srv
}

// requestError answers a request the server could not read: too large headers (431), a body
// over maxRequestBody (413), a read timeout (408), anything else malformed (400). The answer
// carries the security headers like every other, and fasthttp closes the connection after it
// (for a 431 or 413, a lingering close: serve.Linger).
func requestError(ctx *fasthttp.RequestCtx, err error) {
	status := http.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		status = http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		status = http.StatusRequestTimeout
	}
	ctx.Response.Reset()
	setSecurityHeaders(&ctx.Response.Header)
	writeError(ctx, status)
	if status == http.StatusRequestHeaderFieldsTooLarge || status == http.StatusRequestEntityTooLarge {
		// A client with a large cookie or body is still writing the rest, unread: it must get
		// this answer, not a reset. A slow (408) or malformed (400) one is not kept longer.
		serve.Linger(ctx.Conn())
	}
}

// fasthttpLogger sends the server's own messages (accept errors, a connection that failed
// other than by a reset or a timeout) to the JSON log at warn level, like net/http's ErrorLog
// in clock-api, cut to the bound of every client-influenced text.
type fasthttpLogger struct{ logger *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.logger.Warn(logjson.Cut(fmt.Sprintf(format, args...)))
}

// serveHTTP runs srv on ln until ctx is done, then drains it as serve.Serve does for
// clock-api: the listener closes, kept-alive connections are told to close with their next
// answer, and in-flight requests get SHUTDOWN_TIMEOUT to finish. ln is closed when it
// returns; it returns nil after a clean drain.
func serveHTTP(ctx context.Context, cfg serve.Config, ln net.Listener, srv *fasthttp.Server, logger *slog.Logger) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", slog.String("addr", ln.Addr().String()),
		slog.Int("max_conns", serve.MaxConns), slog.Int("max_header_bytes", srv.ReadBufferSize))

	select {
	case err := <-serveErr:
		_ = ln.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", slog.String("timeout", cfg.ShutdownTimeout.String()))
	// ctx is already done: the drain needs a deadline of its own.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil {
		// The requests still running are cut when the process exits, right after this.
		logger.Warn("drain incomplete, closing connections", slog.String("error", err.Error()))
	}
	if err := <-serveErr; err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}
