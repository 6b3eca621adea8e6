module github.com/clock-app/clock

go 1.26.8

require (
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/magefile/mage v1.17.2
	golang.org/x/crypto v0.58.0
)

require golang.org/x/sys v0.49.0 // indirect
