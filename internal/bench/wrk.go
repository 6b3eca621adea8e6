package bench

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one `wrk --latency` run printed.
type wrkResult struct {
	Requests       int64
	RequestsPerSec float64
	P50, P99       time.Duration
	Non2xx         int64 // "Non-2xx or 3xx responses"
	SocketErrors   int64 // connect + read + write + timeout
}

// errors counts the requests that did not measure the server's happy path.
func (w wrkResult) errors() int64 { return w.Non2xx + w.SocketErrors }

var (
	wrkRequestsRe   = regexp.MustCompile(`^(\d+) requests in \S+, `)
	wrkRateRe       = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)$`)
	wrkPercentileRe = regexp.MustCompile(`^(\d+(?:\.\d+)?)%\s+([0-9.]+)(us|ms|s|m|h)$`)
	wrkNon2xxRe     = regexp.MustCompile(`^Non-2xx or 3xx responses: (\d+)$`)
	wrkSocketRe     = regexp.MustCompile(`^Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)$`)
)

// parseWrk reads the text wrk 4 prints with --latency. Lines it does not
// know (thread stats, a Lua script's output) are skipped; the summary lines
// it needs must all be there, or the run was not what we asked for.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRequests, haveRate, haveP50, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := wrkRequestsRe.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			r.Requests, haveRequests = n, true
		} else if m := wrkRateRe.FindStringSubmatch(line); m != nil {
			f, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			r.RequestsPerSec, haveRate = f, true
		} else if m := wrkPercentileRe.FindStringSubmatch(line); m != nil {
			// wrk writes "us" for microseconds, which time.ParseDuration
			// accepts, as it does wrk's other units (ms, s, m, h).
			d, err := time.ParseDuration(m[2] + m[3])
			if err != nil {
				return r, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			switch m[1] {
			case "50":
				r.P50, haveP50 = d, true
			case "99":
				r.P99, haveP99 = d, true
			}
		} else if m := wrkNon2xxRe.FindStringSubmatch(line); m != nil {
			r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := wrkSocketRe.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				r.SocketErrors += n
			}
		}
	}
	switch {
	case !haveRequests:
		return r, fmt.Errorf("wrk output has no %q line", "N requests in T")
	case !haveRate:
		return r, fmt.Errorf("wrk output has no %q line", "Requests/sec:")
	case !haveP50 || !haveP99:
		return r, fmt.Errorf("wrk output has no 50%% and 99%% latency lines (was --latency given?)")
	}
	return r, nil
}
