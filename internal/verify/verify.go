// Package verify checks a deployed clock from the outside, the way a user would: the page
// loads and /clock tells the time.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Result is what a successful check saw.
type Result struct {
	URL   string
	Clock float64       // what /clock said
	Skew  time.Duration // Clock minus this host's clock when the answer came
}

// Clock checks base (e.g. http://192.168.122.10) once: `/` serves the page and `/clock`
// answers a float within maxSkew of now, with Cache-Control: no-store.
func Clock(ctx context.Context, client *http.Client, base string, maxSkew time.Duration) (Result, error) {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	base = strings.TrimSuffix(base, "/")
	page, _, err := get(ctx, client, base+"/")
	if err != nil {
		return Result{}, err
	}
	if !strings.Contains(page, `id="clock-time"`) {
		return Result{}, fmt.Errorf("GET %s/: the page has no clock (no #clock-time element)", base)
	}
	body, hdr, err := get(ctx, client, base+"/clock")
	if err != nil {
		return Result{}, err
	}
	now := time.Now()
	v, err := strconv.ParseFloat(strings.TrimSpace(body), 64)
	if err != nil {
		return Result{}, fmt.Errorf("GET %s/clock: body %q is not a number", base, truncate(body))
	}
	skew := time.Duration((v - float64(now.UnixNano())/1e9) * float64(time.Second))
	if math.Abs(float64(skew)) > float64(maxSkew) {
		return Result{}, fmt.Errorf("GET %s/clock: %s is %s away from this host's clock (at most %s allowed)", base, body, skew.Round(time.Millisecond), maxSkew)
	}
	if cc := hdr.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		return Result{}, fmt.Errorf("GET %s/clock: Cache-Control is %q, want no-store", base, cc)
	}
	return Result{URL: base + "/", Clock: v, Skew: skew}, nil
}

// Wait repeats Clock until it passes or ctx ends, and returns the last error then. Containers
// take a few seconds to turn healthy after a deploy.
func Wait(ctx context.Context, base string, maxSkew time.Duration) (Result, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for {
		r, err := Clock(ctx, client, base, maxSkew)
		if err == nil {
			return r, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%w (gave up: %v)", last, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func get(ctx context.Context, client *http.Client, url string) (string, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), resp.Header, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Closed checks that nothing accepts TCP connections at addr: a refused or timed-out dial
// passes, an accepted one fails.
func Closed(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s accepts connections, want it closed", addr)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return nil
	}
	return fmt.Errorf("dial %s: %w", addr, err)
}
