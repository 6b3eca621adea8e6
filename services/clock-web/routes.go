package main

import (
	"io/fs"
	"log/slog"
	"net/http"
)

// newHandler builds the whole HTTP surface of the service.
func newHandler(cfg config, logger *slog.Logger) (http.Handler, error) {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files, err := newStaticFiles(static)
	if err != nil {
		return nil, err
	}
	clock, err := newClockProxy(cfg, logger)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	// Exactly /clock reaches the API: /clock/x, /metrics and everything else end in the
	// static table (404 unless it is a page file), and the mux redirects unclean paths such
	// as /clock/../metrics before any handler runs.
	mux.Handle("/clock", getOrHead(clock))
	mux.Handle("/healthz", getOrHead(healthz()))
	mux.Handle("/", files)

	// Outermost first: the access log sees the final status, including the mux's 404/405
	// and redirects; the security headers are in place before any handler writes.
	return accessLog(logger, securityHeaders(filesFirst(files, mux))), nil
}

// filesFirst answers the requests for the page's own files without the mux: they are most
// of the traffic, and a map lookup is cheaper than the mux's pattern matching. The table's
// paths are exact and clean, so the mux would have chosen the same handler for them;
// every other path, unclean ones included, still goes through the mux.
func filesFirst(files staticFiles, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := files[r.URL.Path]; ok {
			a.serve(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// getOrHead answers 405 to every other method. The routes are registered without a method
// pattern so that the mux's catch-all "/" does not turn a POST /clock into a 404.
func getOrHead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header()["Allow"] = hdrAllowGet
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func healthz() http.Handler {
	body := []byte("ok")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = hdrTextPlainCT
		h["Cache-Control"] = hdrNoStore
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}
