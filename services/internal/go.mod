module github.com/clock-app/clock/services/internal

go 1.26.8

require github.com/kelseyhightower/envconfig v1.4.0

require golang.org/x/sys v0.48.0
