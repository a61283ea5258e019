#!/usr/bin/env bash
# The main job end to end: package the Go sample chaincode, build its image,
# start it with TLS material pointed at a stand-in peer address, show its
# mirrored output and `cclaunch ps`, then stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/cclaunch
[ -x "$bin" ] || cargo build --release
export CCLAUNCH_CONFIG=testdata/demo/core.yaml
work=$(mktemp -d)
cleanup() { [ -n "${listener:-}" ] && kill "$listener" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "package the Go sample (testdata/chaincode/golang) as a Fabric chaincode package"
id=$($bin package --type golang --label demo_1.0 --path example.com/cclaunch/sample testdata/chaincode/golang -o "$work/demo.tar.gz")
echo "package id: $id"
$bin names "$id"

step "build (the image is reused when it already exists)"
$bin build "$work/demo.tar.gz"

step "TLS material as a peer issues it (CA + client certificate)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=demo-ca -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=demo-cc \
  -keyout "$work/client.key" -out "$work/client.csr" 2>/dev/null
openssl x509 -req -in "$work/client.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -out "$work/client.crt" 2>/dev/null
echo "client certificate: $(openssl x509 -in "$work/client.crt" -noout -subject)"

step "a stand-in peer address for the chaincode to dial (127.0.0.1:7052)"
python3 -c '
import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7052)); s.listen(8)
while True: c, _ = s.accept(); print("peer: chaincode connected", flush=True)
' &
listener=$!
sleep 0.5

step "start it as a peer would (args, env, TLS files uploaded before start)"
$bin start "$id" --peer-address 127.0.0.1:7052 \
  --client-cert "$work/client.crt" --client-key "$work/client.key" --root-cert "$work/ca.crt"
sleep 2

step "its output, mirrored line by line (cclaunch logs)"
$bin logs "$id"

step "cclaunch ps"
$bin ps

step "stop"
$bin stop "$id"
$bin ps
