#!/usr/bin/env bash
# Writes vendor/ for the golang-shim sample from Debian bookworm's Go source
# packages (/usr/share/gocode/src), so that Fabric's `go build -mod=vendor`
# needs no module proxy. The result is not committed: tests and the bench run
# this script into their own copy of the sample.
#
# usage: vendor.sh [DIR]   DIR: the copy of the sample to vendor into
#                          (default: this script's directory)
# needs: apt-get install golang-google-grpc-dev golang-google-protobuf-dev
#
# Only the packages the shim imports (go list -deps of this sample, frozen
# below) are copied, without tests; vendor/modules.txt lists them under the
# module versions in go.mod, as `go mod vendor` would. A Debian package at
# another version than the one go.mod names is an error, not a silent
# mismatch.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="$(cd "${1:-$HERE}" && pwd)"
SRC="${GOCODE_SRC:-/usr/share/gocode/src}"

# module  version (as in go.mod)  go directive of its go.mod  Debian package  Debian version
MODULES=(
  "github.com/golang/protobuf v1.3.5 1.9 golang-github-golang-protobuf-1-3-dev 1.3.5-4"
  "golang.org/x/net v0.7.0 1.17 golang-golang-x-net-dev 1:0.7.0+dfsg-1"
  "golang.org/x/sys v0.3.0 1.17 golang-golang-x-sys-dev 0.3.0-1"
  "golang.org/x/text v0.7.0 - golang-golang-x-text-dev 0.7.0-1"
  "google.golang.org/genproto v0.0.0-20200413115906-b5235f65be36 1.11 golang-google-genproto-dev 0.0~git20200413.b5235f6-3"
  "google.golang.org/grpc v1.33.3 1.11 golang-google-grpc-dev 1.33.3-2"
  "google.golang.org/protobuf v1.28.1 1.11 golang-google-protobuf-dev 1.28.1-3"
)

PACKAGES=(
  github.com/golang/protobuf/proto
  github.com/golang/protobuf/ptypes
  github.com/golang/protobuf/ptypes/any
  github.com/golang/protobuf/ptypes/duration
  github.com/golang/protobuf/ptypes/timestamp
  golang.org/x/net/http/httpguts
  golang.org/x/net/http2
  golang.org/x/net/http2/hpack
  golang.org/x/net/idna
  golang.org/x/net/internal/timeseries
  golang.org/x/net/trace
  golang.org/x/sys/unix
  golang.org/x/text/secure/bidirule
  golang.org/x/text/transform
  golang.org/x/text/unicode/bidi
  golang.org/x/text/unicode/norm
  google.golang.org/genproto/googleapis/rpc/status
  google.golang.org/grpc
  google.golang.org/grpc/attributes
  google.golang.org/grpc/backoff
  google.golang.org/grpc/balancer
  google.golang.org/grpc/balancer/base
  google.golang.org/grpc/balancer/grpclb/state
  google.golang.org/grpc/balancer/roundrobin
  google.golang.org/grpc/binarylog/grpc_binarylog_v1
  google.golang.org/grpc/codes
  google.golang.org/grpc/connectivity
  google.golang.org/grpc/credentials
  google.golang.org/grpc/encoding
  google.golang.org/grpc/encoding/proto
  google.golang.org/grpc/grpclog
  google.golang.org/grpc/internal
  google.golang.org/grpc/internal/backoff
  google.golang.org/grpc/internal/balancerload
  google.golang.org/grpc/internal/binarylog
  google.golang.org/grpc/internal/buffer
  google.golang.org/grpc/internal/channelz
  google.golang.org/grpc/internal/credentials
  google.golang.org/grpc/internal/envconfig
  google.golang.org/grpc/internal/grpclog
  google.golang.org/grpc/internal/grpcrand
  google.golang.org/grpc/internal/grpcsync
  google.golang.org/grpc/internal/grpcutil
  google.golang.org/grpc/internal/resolver/dns
  google.golang.org/grpc/internal/resolver/passthrough
  google.golang.org/grpc/internal/serviceconfig
  google.golang.org/grpc/internal/status
  google.golang.org/grpc/internal/syscall
  google.golang.org/grpc/internal/transport
  google.golang.org/grpc/keepalive
  google.golang.org/grpc/metadata
  google.golang.org/grpc/peer
  google.golang.org/grpc/resolver
  google.golang.org/grpc/serviceconfig
  google.golang.org/grpc/stats
  google.golang.org/grpc/status
  google.golang.org/grpc/tap
  google.golang.org/protobuf/encoding/protowire
  google.golang.org/protobuf/internal/detrand
  google.golang.org/protobuf/internal/errors
)

die() { echo "vendor.sh: $*" >&2; exit 1; }

[ -d "$SRC" ] || die "$SRC missing (apt-get install golang-google-grpc-dev golang-google-protobuf-dev)"
for line in "${MODULES[@]}"; do
  read -r module _ _ deb debversion <<<"$line"
  have="$(dpkg-query -W -f '${Version}' "$deb" 2>/dev/null)" || die "Debian package $deb is not installed"
  [ "$have" = "$debversion" ] || die "$deb is $have, go.mod and this script name $debversion: update both"
  grep -q "^	$module " "$DIR/go.mod" || die "$module missing from $DIR/go.mod"
done

rm -rf "$DIR/vendor"
mkdir -p "$DIR/vendor"
{
  for line in "${MODULES[@]}"; do
    read -r module version go deb _ <<<"$line"
    echo "# $module $version"
    if [ "$go" = - ]; then echo "## explicit"; else echo "## explicit; go $go"; fi
    mkdir -p "$DIR/vendor/$module"
    # Debian keeps each package's licence in its copyright file.
    cp "/usr/share/doc/$deb/copyright" "$DIR/vendor/$module/LICENSE.debian-copyright"
    for pkg in "${PACKAGES[@]}"; do
      case "$pkg" in "$module" | "$module"/*) ;; *) continue ;; esac
      echo "$pkg"
      mkdir -p "$DIR/vendor/$pkg"
      # Every platform's sources, no tests and no sub-directories: what
      # `go mod vendor` keeps.
      find "$SRC/$pkg" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name '*.h' -o -name '*.c' \) \
        ! -name '*_test.go' -exec cp -t "$DIR/vendor/$pkg/" {} +
    done
  done
} >"$DIR/vendor/modules.txt"
for pkg in "${PACKAGES[@]}"; do
  grep -qx "$pkg" "$DIR/vendor/modules.txt" || die "$pkg belongs to no module listed here"
done
echo "vendor.sh: $(find "$DIR/vendor" -type f | wc -l) files, $(du -sh "$DIR/vendor" | cut -f1) in $DIR/vendor" >&2
