// Command clock-web serves the clock page and proxies its /clock requests to clock-api.
package main

import "github.com/clock-app/clock/services/internal/serve"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	serve.Main("clock-web", run)
}
