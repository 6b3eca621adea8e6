module github.com/clock-app/clock/services/clock-web

go 1.26.8

require (
	github.com/clock-app/clock/services/internal v0.0.0
	github.com/valyala/fasthttp v1.78.0
)

require (
	github.com/kelseyhightower/envconfig v1.4.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
)

replace github.com/clock-app/clock/services/internal => ../internal
