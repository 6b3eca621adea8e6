module github.com/clock-app/clock/services/internal

go 1.26.8
