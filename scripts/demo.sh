#!/usr/bin/env bash
# The main job end to end: package the Go sample chaincode, build its image,
# start it with TLS material from a stand-in peer (devpeer), show its mirrored
# output and `cclaunch ps`, stop it; then a real Fabric chaincode (the npm
# fabric-contract-api asset contract) registers over mutual TLS and answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/cclaunch
[ -x "$bin" ] || cargo build --release
export CCLAUNCH_CONFIG=testdata/demo/core.yaml
work=$(mktemp -d)
cleanup() { [ -n "${devpeer:-}" ] && kill "$devpeer" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "package the Go sample (testdata/chaincode/golang) as a Fabric chaincode package"
id=$($bin package --type golang --label demo_1.0 --path example.com/cclaunch/sample testdata/chaincode/golang -o "$work/demo.tar.gz")
echo "package id: $id"
$bin names "$id"

step "build (the image is reused when it already exists)"
$bin build "$work/demo.tar.gz"

step "a stand-in peer on 127.0.0.1:7052 with its own CA (cclaunch devpeer serve --tls)"
$bin devpeer serve --listen 127.0.0.1:7052 --control 127.0.0.1:7053 --tls --tls-dir "$work/tls" &
devpeer=$!
for _ in $(seq 50); do [ -f "$work/tls/client.key" ] && break; sleep 0.1; done

step "start it as a peer would (args, env, TLS files uploaded before start)"
$bin start "$id" --peer-address 127.0.0.1:7052 \
  --client-cert "$work/tls/client.crt" --client-key "$work/tls/client.key" --root-cert "$work/tls/ca.crt"
sleep 2

step "its output, mirrored line by line (cclaunch logs)"
$bin logs "$id"

step "cclaunch ps"
$bin ps

step "stop"
$bin stop "$id"
kill "$devpeer"; wait "$devpeer" 2>/dev/null || true; devpeer=

step "a real Fabric chaincode: the fabric-contract-api asset store, over mutual TLS (cclaunch try)"
$bin package --type node --label assets_1.0 testdata/chaincode/node-contract -o "$work/assets.tar.gz" >/dev/null
RUST_LOG=warn,peer.chaincode=info $bin try "$work/assets.tar.gz" --tls \
  --invoke '["CreateAsset","a1","blue"]' --invoke '["ReadAsset","a1"]' --invoke '["UpdateAsset","a1","green"]' \
  --invoke '["ReadAsset","a1"]'
