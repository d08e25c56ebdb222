#!/usr/bin/env bash
# `make engine`: builds the real Pulumi CLI and our Python language host into .tools/bin from the Go
# module proxy (versions pinned in this folder's go.mod / go.sum), and installs the dynamic-provider
# launcher (with the die-with-parent helper it execs through) and upstream's program shim beside them.
# Nothing but Go modules is downloaded.
# A second run with nothing to do takes seconds: `go install` relinks only what changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/.tools/bin"

if ! command -v go >/dev/null 2>&1; then
    if command -v pulumi >/dev/null 2>&1; then
        echo "make engine: no Go toolchain; make e2e will use the Pulumi CLI on PATH: $(command -v pulumi)"
        exit 0
    fi
    echo "make engine: install Go 1.26 or newer (it builds the Pulumi CLI from the Go module proxy) or put a Pulumi CLI on PATH" >&2
    exit 1
fi

mkdir -p "$bin"
cd "$here"
version="$(go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3)"
GOBIN="$bin" go install -buildvcs=false \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi ./cmd/pulumi-language-python ./cmd/die-with-parent

# Upstream's Python program shim, from the SDK module the CLI was built with (it is not in the pip wheel).
sdk="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
install -m 0755 "$here/launchers/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"

echo "make engine: $("$bin/pulumi" version) in $bin (pulumi, pulumi-language-python, pulumi-language-python-exec, pulumi-resource-pulumi-python, die-with-parent)"
