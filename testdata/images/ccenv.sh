#!/usr/bin/env bash
# cclaunch-test/ccenv:latest — stands in for hyperledger/fabric-ccenv (the Go
# chaincode build image). Derived from cclaunch-test/toolchain:latest with a
# local `docker build` (no pull).
#   ENV GOPATH=/go GOCACHE=/tmp/gocache GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
# Checked: Fabric's static build (-linkmode external -extldflags '-static') of a
# stdlib-only module.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="${1:-cclaunch-test/ccenv:latest}"
BASE="${BASE_IMAGE:-cclaunch-test/toolchain:latest}"
need_build "$IMAGE" || exit 0
image_exists "$BASE" || die "base image $BASE missing (run toolchain.sh first)"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/cclaunch-ccenv.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

cat >"$ctx/Dockerfile" <<DF
FROM $BASE
ENV GOPATH=/go \\
    GOCACHE=/tmp/gocache \\
    GOTOOLCHAIN=local \\
    GOFLAGS=-buildvcs=false \\
    PATH=/go/bin:/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
RUN command -v go >/dev/null || { echo "ccenv: go missing from $BASE" >&2; exit 1; } \\
 && mkdir -p /go/src /go/bin /chaincode/input /chaincode/output && chmod -R 0777 /go
WORKDIR /
DF
timed "docker build $IMAGE" local_build -t "$IMAGE" "$ctx"

# The check module imports net, as every real chaincode does through the
# Fabric shim: with Go <= 1.21, `go build -ldflags "-linkmode external ..."`
# of a package that imports nothing pulling in runtime/cgo (e.g. only fmt)
# fails with "loadinternal: cannot find runtime/cgo" (golang/go#31544) — a
# Go toolchain limitation, not an image problem.
check() {
  docker run --rm "$IMAGE" sh -ec '
    mkdir -p /tmp/m && cd /tmp/m
    printf "module example.com/check\n\ngo 1.19\n" > go.mod
    cat > main.go <<GO
package main

import (
	"fmt"
	"net"
)

func main() { _, err := net.ResolveTCPAddr("tcp", "127.0.0.1:7052"); fmt.Println("ccenv static build ok", err) }
GO
    GO111MODULE=on go build -mod=readonly -ldflags "-linkmode external -extldflags '\''-static'\''" -o /tmp/m/chaincode
    ./chaincode
    if readelf -l ./chaincode | grep -q "program interpreter"; then echo "ccenv: binary is not static" >&2; exit 1; fi
    go version'
}
timed "check static go build in $IMAGE" check >&2
log "$IMAGE: $(image_size "$IMAGE")"
