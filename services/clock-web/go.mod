module github.com/clock-app/clock/services/clock-web

go 1.26.8

require github.com/clock-app/clock/services/internal v0.0.0

require github.com/kelseyhightower/envconfig v1.4.0 // indirect

replace github.com/clock-app/clock/services/internal => ../internal
