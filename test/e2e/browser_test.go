package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the browser's zone must resolve the same way in Go everywhere

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// browserZone is far from UTC, with a 45-minute offset and no DST, so a
	// page that shows UTC or rounds the offset to hours fails, and the date
	// differs from UTC's for almost six hours a day.
	browserZone = "Asia/Kathmandu"
)

// cspListener records Content-Security-Policy violations from the first
// moment of every document, before the page's own scripts run.
const cspListener = `
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
	window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));
});`

// pageState is what the browser shows, read in one evaluation.
type pageState struct {
	State         string   `json:"state"`
	Time          string   `json:"time"`
	Date          string   `json:"date"`
	Status        string   `json:"status"`
	StatusVisible bool     `json:"statusVisible"`
	Zone          string   `json:"zone"`
	OffsetMinutes int      `json:"offsetMinutes"`
	CSP           []string `json:"csp"`
}

const readPage = `(() => {
	const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : ''; };
	const visible = (id) => {
		const e = document.getElementById(id);
		if (!e || e.hidden) return false;
		const s = getComputedStyle(e);
		return s.display !== 'none' && s.visibility !== 'hidden' && e.getClientRects().length > 0;
	};
	return {
		state: document.documentElement.dataset.state || '',
		time: text('clock-time'),
		date: text('clock-date'),
		status: text('clock-status'),
		statusVisible: visible('clock-status'),
		zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
		offsetMinutes: -new Date().getTimezoneOffset(),
		csp: window.__cspViolations || [],
	};
})()`

// TestBrowser opens the page in headless Chromium and checks what a user
// sees: the time and date in the browser's zone, no CSP violations, and the
// "backend unreachable" state while the API is down.
//
// It does not run in parallel with the other tests: once, under CI, the page's own requests
// were reset by docker's port proxy while the parallel tests started and stopped their
// containers, and no request reached this stack's clock-web. Alone it measures the page,
// not the machine's churn.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no browser at %s (install the chromium package); under CI=true this fails", chromiumPath)
		}
		t.Fatalf("CI needs a browser at %s: %v", chromiumPath, err)
	}
	loc, err := time.LoadLocation(browserZone)
	if err != nil {
		t.Fatalf("load zone %s: %v", browserZone, err)
	}

	s := startStack(t)
	ctx := newBrowser(t)
	console := watchConsole(t, ctx)

	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: browserZone}); err != nil {
		t.Fatalf("set time zone: %v", err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener}); err != nil {
		t.Fatalf("add CSP listener: %v", err)
	}
	// 127.0.0.1, not localhost: the browser would try ::1 first, through a second proxy.
	pageURL := strings.Replace(s.web.URL, "://localhost:", "://127.0.0.1:", 1) + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("navigate to %s: %v", s.web.URL, err)
	}

	t.Run("shows the time", func(t *testing.T) {
		st := waitPage(t, ctx, 15*time.Second, "data-state=ok and a time", func(st pageState) bool {
			return st.State == "ok" && st.Time != "" && st.Date != ""
		})
		now := time.Now().In(loc)
		// ICU may name the zone by an alias (Asia/Katmandu): compare offsets.
		if _, off := now.Zone(); st.OffsetMinutes*60 != off {
			t.Fatalf("browser UTC offset: got %d min (zone %q), want %d min (%s)", st.OffsetMinutes, st.Zone, off/60, browserZone)
		}
		shown, err := secondsOfDay(st.Time)
		if err != nil {
			t.Fatalf("#clock-time: got %q, want HH:MM:SS", st.Time)
		}
		want := now.Hour()*3600 + now.Minute()*60 + now.Second()
		if d := dayDistance(shown, want); d > 2 {
			t.Errorf("#clock-time: got %q, want within 2s of %s (%s), off by %ds", st.Time, now.Format("15:04:05"), browserZone, d)
		}
		// Right after midnight the page may still show the previous day.
		dates := []string{now.Format("02/01/2006"), now.Add(-3 * time.Second).Format("02/01/2006")}
		if st.Date != dates[0] && st.Date != dates[1] {
			t.Errorf("#clock-date: got %q, want %q (%s)", st.Date, dates[0], browserZone)
		}
		if st.Status != "" && st.StatusVisible {
			t.Errorf("#clock-status with the API up: got visible %q, want hidden or empty", st.Status)
		}
	})

	t.Run("backend unreachable", func(t *testing.T) {
		stopContainer(t, s.api.DockerContainer)
		st := waitPage(t, ctx, 30*time.Second, "data-state=unreachable", func(st pageState) bool {
			return st.State == "unreachable"
		})
		if !st.StatusVisible || st.Status != "backend unreachable" {
			t.Errorf("#clock-status: got %q (visible %t), want visible %q", st.Status, st.StatusVisible, "backend unreachable")
		}

		startContainer(t, s.api.DockerContainer)
		st = waitPage(t, ctx, 30*time.Second, "data-state=ok after the API restart", func(st pageState) bool {
			return st.State == "ok"
		})
		if st.StatusVisible && strings.Contains(st.Status, "backend unreachable") {
			t.Errorf("#clock-status after the API restart: got visible %q, want it cleared", st.Status)
		}
	})

	t.Run("no CSP violations", func(t *testing.T) {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
		if err != nil {
			t.Fatalf("read page: %v", err)
		}
		for _, v := range st.CSP {
			t.Errorf("securitypolicyviolation: %s", v)
		}
		for _, m := range console.csp() {
			t.Errorf("console: %s", m)
		}
	})
}

// newBrowser starts headless Chromium with a fresh profile. The browser lives
// until the test ends or five minutes pass, whichever is first.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	limit, cancelLimit := context.WithTimeout(t.Context(), 5*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(limit, opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelLimit()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return ctx
}

// consoleLog collects the page's console and browser-log messages.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func watchConsole(t *testing.T, ctx context.Context) *consoleLog {
	t.Helper()
	l := &consoleLog{}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		// The browser's context ends with the test; wait so that no
		// goroutine outlives it, then show what the page said on failure.
		<-done
		if t.Failed() {
			for _, m := range l.all() {
				t.Logf("browser console: %s (%s:%d)", m, m.URL, m.Line+1)
			}
		}
	})
	return l
}

func (l *consoleLog) all() []chromedp.ConsoleMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// csp returns the messages that report a Content-Security-Policy violation.
func (l *consoleLog) csp() []string {
	var out []string
	for _, m := range l.all() {
		if strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy") {
			out = append(out, m.String())
		}
	}
	return out
}

// waitPage polls the page until ok accepts its state.
func waitPage(t *testing.T, ctx context.Context, timeout time.Duration, what string, ok func(pageState) bool) pageState {
	t.Helper()
	var last pageState
	eventually(t, timeout, func() (bool, string) {
		evalCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := chromedp.Run(evalCtx, chromedp.Evaluate[pageState](readPage))
		if err != nil {
			return false, fmt.Sprintf("waiting for %s: %v", what, err)
		}
		last = st
		return ok(st), fmt.Sprintf("waiting for %s: got %+v", what, st)
	})
	return last
}

func secondsOfDay(hms string) (int, error) {
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("not HH:MM:SS: %q", hms)
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) != 2 {
			return 0, fmt.Errorf("not HH:MM:SS: %q", hms)
		}
		v[i] = n
	}
	if v[0] > 23 || v[1] > 59 || v[2] > 59 {
		return 0, fmt.Errorf("not a time of day: %q", hms)
	}
	return v[0]*3600 + v[1]*60 + v[2], nil
}

// dayDistance is the distance in seconds between two times of day, across
// midnight.
func dayDistance(a, b int) int {
	d := a - b
	if d < 0 {
		d = -d
	}
	return min(d, 86400-d)
}
