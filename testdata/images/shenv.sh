#!/usr/bin/env bash
# cclaunch-test/shenv:latest — busybox plus the two scripts Fabric's
# fabric-nodeenv image carries (/chaincode/build.sh, /chaincode/start.sh).
# Fast stand-in for node-platform tests: a package whose src/ has a start.sh
#   build:  /chaincode/build.sh  copies /chaincode/input/src/. to /chaincode/output/
#   run:    /chaincode/start.sh  runs `sh ./start.sh "$@"` in /usr/local/src
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="${1:-cclaunch-test/shenv:latest}"
BASE="${BASE_IMAGE:-cclaunch-test/busybox:latest}"
need_build "$IMAGE" || exit 0
image_exists "$BASE" || die "base image $BASE missing (run busybox.sh first)"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/cclaunch-shenv.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

cat >"$ctx/build.sh" <<'SH'
#!/bin/sh
# Stand-in for fabric-nodeenv's /chaincode/build.sh.
set -e
INPUT_DIR=/chaincode/input
OUTPUT_DIR=/chaincode/output
if [ ! -d "$INPUT_DIR/src" ]; then
  echo "build.sh: $INPUT_DIR/src not found" >&2
  exit 1
fi
mkdir -p "$OUTPUT_DIR"
cp -R "$INPUT_DIR/src/." "$OUTPUT_DIR/"
echo "build.sh: copied $INPUT_DIR/src to $OUTPUT_DIR"
SH

cat >"$ctx/start.sh" <<'SH'
#!/bin/sh
# Stand-in for fabric-nodeenv's /chaincode/start.sh.
cd /usr/local/src && exec sh ./start.sh "$@"
SH

cat >"$ctx/Dockerfile" <<DF
FROM $BASE
COPY build.sh start.sh /chaincode/
RUN chmod 0755 /chaincode/build.sh /chaincode/start.sh
WORKDIR /
DF

local_build -t "$IMAGE" "$ctx"

# Smoke test: build then start a tiny package.
docker run --rm "$IMAGE" sh -c '
  set -e
  mkdir -p /chaincode/input/src
  printf "echo shenv-start args=\$*\n" > /chaincode/input/src/start.sh
  /chaincode/build.sh >/dev/null
  mkdir -p /usr/local/src && cp -R /chaincode/output/. /usr/local/src/
  /chaincode/start.sh --peer.address x:1' >&2
log "$IMAGE: $(image_size "$IMAGE")"
