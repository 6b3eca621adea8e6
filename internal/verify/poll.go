package verify

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Poller sends GET /clock at a steady rate over a few kept-alive connections, as open pages
// do, and counts the answers that were not a 200 with a number. Start it before touching a
// running deployment and Stop it after: Failed is the figure that counts.
type Poller struct {
	cancel  context.CancelFunc
	done    sync.WaitGroup
	sent    atomic.Int64
	failed  atomic.Int64
	dials   atomic.Int64
	mu      sync.Mutex
	samples []string
}

// PollStats is what a Poller saw.
type PollStats struct {
	Sent, Failed int64
	Conns        int64    // connections dialled: a failure per connection is what a kill may cost
	Samples      []string // the first few failures, with their time
}

func (s PollStats) String() string {
	out := fmt.Sprintf("%d requests, %d failed, over %d connections", s.Sent, s.Failed, s.Conns)
	if len(s.Samples) > 0 {
		out += "; first failures: " + strings.Join(s.Samples, "; ")
	}
	return out
}

// Poll starts clients goroutines that each GET base+"/clock" every interval (20 a second in
// all with 4 clients every 200ms), each over its own kept-alive connection.
func Poll(base string, clients int, interval time.Duration) *Poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Poller{cancel: cancel}
	url := strings.TrimSuffix(base, "/") + "/clock"
	for range clients {
		dialer := &net.Dialer{Timeout: 2 * time.Second}
		client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 1,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				p.dials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			},
		}}
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				p.sent.Add(1)
				if err := pollOnce(ctx, client, url); err != nil && ctx.Err() == nil {
					p.failed.Add(1)
					p.mu.Lock()
					if len(p.samples) < 5 {
						p.samples = append(p.samples, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

func pollOnce(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<10))
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", res.Status)
	}
	if _, err := strconv.ParseFloat(strings.TrimSpace(string(body)), 64); err != nil {
		return fmt.Errorf("body %q is not a number", truncate(string(body)))
	}
	return nil
}

// Stats reports what the poller saw so far; it keeps polling.
func (p *Poller) Stats() PollStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PollStats{Sent: p.sent.Load(), Failed: p.failed.Load(), Conns: p.dials.Load(), Samples: append([]string(nil), p.samples...)}
}

// Stop ends the polling and reports what it saw.
func (p *Poller) Stop() PollStats {
	p.cancel()
	p.done.Wait()
	return p.Stats()
}
