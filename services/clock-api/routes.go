package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo-contrib/echoprometheus"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/clock-app/clock/services/internal/logjson"
)

// newRouter builds the whole HTTP surface: every route and middleware is here.
// reg is the service's own registry (not the global default) so each router,
// and each test, has its own metrics.
func newRouter(logger *slog.Logger, reg *prometheus.Registry, now func() time.Time) (http.Handler, error) {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	// Echo's own logger (used when an error response cannot be written)
	// goes through slog too, so stdout stays one JSON schema.
	e.Logger.SetOutput(slog.NewLogLogger(logger.Handler(), slog.LevelWarn).Writer())
	// The service is reached directly (or through a proxy that does not
	// rewrite X-Forwarded-For for us): log the peer address, not a header a
	// client can forge.
	e.IPExtractor = echo.ExtractIPDirect()

	// Every label takes its values from a fixed set, so no client can add series: the
	// default labels copy the request's method token and Host header, which a client
	// chooses freely (20,000 made-up methods once made an 82 MB scrape). code is what
	// this server sends: 200, 404, 405 or 500.
	routes := map[string]bool{} // the route table's paths, filled below before any request
	metrics, err := echoprometheus.MiddlewareConfig{
		Subsystem:  "clock_api",
		Registerer: reg,
		LabelFuncs: map[string]echoprometheus.LabelValueFunc{
			// Empty means "no label" to Prometheus.
			"host":   func(echo.Context, error) string { return "" },
			"method": func(c echo.Context, _ error) string { return metricMethod(c.Request().Method) },
			"url": func(c echo.Context, _ error) string {
				if p := c.Path(); routes[p] {
					return p
				}
				return unmatchedRoute
			},
		},
	}.ToMiddleware()
	if err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}

	// Middleware, outermost first:
	//  1. access log: sees the final status, including errors turned into
	//     responses by the error handler (HandleError);
	//  2. metrics: counts and times every request, 404/405 included;
	//  3. recover: turns a handler panic into an error the two above record.
	chain := []echo.MiddlewareFunc{
		middleware.RequestLoggerWithConfig(accessLog(logger)),
		metrics,
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			DisableErrorHandler: true, // the access log's HandleError answers it
			LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
				logger.Error("panic", slog.String("path", c.Request().URL.Path),
					slog.Any("error", err), slog.String("stack", string(stack)))
				return err
			},
		}),
	}

	// Echo answers other methods on these paths with 405 and an Allow header.
	clock := handleClock(now)
	e.GET("/clock", clock)
	e.HEAD("/clock", clock)
	e.GET("/healthz", handleHealthz)
	e.GET("/metrics", echoprometheus.NewHandlerWithConfig(echoprometheus.HandlerConfig{Gatherer: reg}))
	for _, r := range e.Routes() {
		routes[r.Path] = true
	}
	return newPrebuilt(e, chain...), nil
}

// unmatchedRoute is the url label of every request that no route matched.
const unmatchedRoute = "unmatched"

// metricMethod maps a request method onto the method label's fixed set: the two methods
// clock-api serves, and OTHER.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead:
		return m
	}
	return "OTHER"
}

// accessLog logs one JSON line per request at info level.
func accessLog(logger *slog.Logger) middleware.RequestLoggerConfig {
	h := logger.Handler()
	return middleware.RequestLoggerConfig{
		Skipper: func(c echo.Context) bool {
			return !h.Enabled(c.Request().Context(), slog.LevelInfo)
		},
		HandleError: true,
		LogMethod:   true,
		LogURIPath:  true,
		LogStatus:   true,
		LogLatency:  true,
		LogRemoteIP: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			// The record goes straight to the handler: Logger.LogAttrs would
			// also capture the caller's PC (runtime.Callers), which nothing
			// prints and which cost as much as encoding the line. The end
			// time comes from values the middleware already measured.
			r := slog.NewRecord(v.StartTime.Add(v.Latency), slog.LevelInfo, "request", 0)
			// Method and path are the client's: bounded, one rule for
			// both services (logjson.AddText).
			logjson.AddText(&r, "method", v.Method)
			logjson.AddText(&r, "path", v.URIPath)
			r.AddAttrs(
				slog.Int("status", v.Status),
				slog.Duration("duration", v.Latency),
				slog.String("remote", v.RemoteIP),
			)
			// A failed log write must not turn into a failed request.
			_ = h.Handle(c.Request().Context(), r)
			return nil
		},
	}
}

// prebuilt serves requests like Echo.ServeHTTP, with the middleware chain
// built once instead of per request.
//
// Echo v4 applies the middleware given to e.Use anew for every request
// (applyMiddleware in Echo.ServeHTTP): each middleware's constructor runs and
// allocates its closure, about 500 bytes and 3 allocations a request, which
// BenchmarkClock and a wrk profile showed as a large share of clock-api's
// overhead over a bare handler. The steps are Echo's own, through its public
// API: pooled context, the router's Find, then the chain, whose innermost
// handler is whatever Find chose (a route, or Echo's 404/405 handler, so those
// are logged and counted as before), and the error handler. What it leaves
// out: e.Pre middleware and e.Host routers, which clock-api does not use; a
// middleware added later belongs in newRouter's chain, not in e.Use.
type prebuilt struct {
	e     *echo.Echo
	chain echo.HandlerFunc
}

func newPrebuilt(e *echo.Echo, mw ...echo.MiddlewareFunc) *prebuilt {
	h := func(c echo.Context) error { return c.Handler()(c) }
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return &prebuilt{e: e, chain: h}
}

func (p *prebuilt) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := p.e.AcquireContext()
	c.Reset(r, w)
	p.e.Router().Find(r.Method, echo.GetPath(r), c)
	if err := p.chain(c); err != nil {
		p.e.HTTPErrorHandler(err, c)
	}
	p.e.ReleaseContext(c)
}
