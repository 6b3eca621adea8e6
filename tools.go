//go:build tools

// Package tools pins the build tools the module needs but does not import.
package tools

import _ "github.com/magefile/mage/mage"
