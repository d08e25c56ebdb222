//go:build tools

// Package tools pins the Pulumi CLI that `make engine` builds: `go build` of the package below uses
// the versions in this module's go.mod and go.sum, nothing else.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
