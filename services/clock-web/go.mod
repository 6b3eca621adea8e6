module github.com/clock-app/clock/services/clock-web

go 1.26.8

require (
	github.com/clock-app/clock/services/internal v0.0.0
	github.com/kelseyhightower/envconfig v1.4.0
)

replace github.com/clock-app/clock/services/internal => ../internal
