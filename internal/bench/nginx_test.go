package bench

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clock-app/clock/internal/host"
)

func TestRenderNginxConf(t *testing.T) {
	conf := renderNginxConf(nginxConfig{
		Prefix: "/tmp/b",
		Log:    "/tmp/b/logs/nginx.log",
		Root:   `/srv/my "static" files`,
		Port:   41234,
		Headers: []nginxHeader{
			{"Content-Security-Policy", "default-src 'none'; script-src 'self'"},
			{"X-Frame-Options", "DENY"},
		},
	})
	for _, want := range []string{
		"daemon off;\n",
		"worker_processes 1;\n",
		`pid "/tmp/b/nginx.pid";`,
		`error_log "/tmp/b/logs/nginx.log" warn;`,
		"/access.log\";",
		`client_body_temp_path "/tmp/b/client_body";`,
		`proxy_temp_path "/tmp/b/proxy";`,
		`fastcgi_temp_path "/tmp/b/fastcgi";`,
		`uwsgi_temp_path "/tmp/b/uwsgi";`,
		`scgi_temp_path "/tmp/b/scgi";`,
		"listen 127.0.0.1:41234;",
		`root "/srv/my \"static\" files";`,
		"text/javascript js;",
		"image/svg+xml svg;",
		`add_header "Content-Security-Policy" "default-src 'none'; script-src 'self'" always;`,
		`add_header "X-Frame-Options" "DENY" always;`,
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "user ") {
		t.Errorf("config has a user directive without User:\n%s", conf)
	}
	if strings.Contains(conf, "/etc/") || strings.Contains(conf, "/var/") {
		t.Errorf("config refers outside its folder:\n%s", conf)
	}

	withUser := renderNginxConf(nginxConfig{Prefix: "/p", Log: "/p/l", Root: "/r", Port: 1, User: "root"})
	if !strings.Contains(withUser, "\nuser \"root\";\n") {
		t.Errorf("config lacks the user directive:\n%s", withUser)
	}
	if strings.Contains(conf, "upstream") || strings.Contains(conf, "location") {
		t.Errorf("config without Upstream proxies:\n%s", conf)
	}

	proxy := renderNginxConf(nginxConfig{Prefix: "/p", Log: "/p/l", Root: "/r", Port: 1, Upstream: "127.0.0.1:4567", Keepalive: 32})
	for _, want := range []string{
		"upstream clock_api {\n        server 127.0.0.1:4567;\n        keepalive 32;\n    }",
		"location = /clock {\n            proxy_pass http://clock_api;",
		"proxy_http_version 1.1;",
		`proxy_set_header Connection "";`,
	} {
		if !strings.Contains(proxy, want) {
			t.Errorf("proxy config lacks %q:\n%s", want, proxy)
		}
	}
}

// TestNginxAcceptsConf has nginx itself check the rendered file.
func TestNginxAcceptsConf(t *testing.T) {
	nginx, err := host.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "a static dir")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c := nginxConfig{Prefix: dir, Log: filepath.Join(dir, "nginx.log"), Root: root, Port: 1,
		Headers: []nginxHeader{{"Content-Security-Policy", `default-src 'none'; connect-src 'self'`}, {"Vary", "Accept-Encoding"}}}
	if os.Geteuid() == 0 {
		c.User = "root"
	}
	for _, upstream := range []string{"", "127.0.0.1:1"} {
		c.Upstream, c.Keepalive = upstream, 8
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(renderNginxConf(c)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-c", path, "-e", c.Log).CombinedOutput()
		if err != nil {
			t.Errorf("nginx -t, upstream %q: %v\n%s\n%s", upstream, err, out, logTail(c.Log, 10))
		}
	}
}

func TestPageHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("Date", "Mon, 23 Nov 2026 01:38:17 GMT")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", "664")
	h.Set("Etag", `"abc"`)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h["vary"] = []string{"Accept-Encoding"} // not canonical: still copied, canonically

	got := pageHeaders(h)
	want := []nginxHeader{
		{"Cache-Control", "no-cache"},
		{"Content-Security-Policy", "default-src 'none'"},
		{"Vary", "Accept-Encoding"},
		{"X-Frame-Options", "DENY"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("pageHeaders = %v, want %v (nginx's own headers left out, sorted)", got, want)
	}
}

func TestHopHeaders(t *testing.T) {
	api := http.Header{}
	api.Set("Cache-Control", "no-store")
	api.Set("Content-Type", "text/plain; charset=utf-8")
	api.Set("Date", "Mon, 23 Nov 2026 01:38:17 GMT")
	web := api.Clone()
	web.Set("Content-Security-Policy", "default-src 'none'")
	web.Set("X-Content-Type-Options", "nosniff")

	got := hopHeaders(web, api)
	want := []nginxHeader{
		{"Content-Security-Policy", "default-src 'none'"},
		{"X-Content-Type-Options", "nosniff"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("hopHeaders = %v, want %v (what the API already sends and nginx's own left out)", got, want)
	}
}
