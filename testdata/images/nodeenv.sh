#!/usr/bin/env bash
# cclaunch-test/nodeenv:latest — stands in for hyperledger/fabric-nodeenv.
# Node.js 18 (Debian) from cclaunch-test/toolchain:latest plus npm 10 taken
# from the npm registry as its package tarball (`npm pack npm@10` on the
# host), unpacked at /usr/lib/node_modules/npm, linked as /usr/bin/npm and
# /usr/bin/npx. Debian's own `npm` package cannot be configured inside
# debootstrap, hence this route.
#
# Deliberately WITHOUT /chaincode/build.sh and /chaincode/start.sh, so that
# Fabric's default node build/run commands get exercised. WORKDIR /.
# /usr/etc/npmrc turns off audit, fund and update-notifier: `npm install` of a
# package without dependencies then needs no network at all.
#
# /bin/sh is bash here (not dash), to behave like the real image's busybox ash:
# both exec the last command of `sh -c "cd /usr/local/src; npm start -- ..."`
# (Fabric's node run command), so npm becomes PID 1 and npm's own
# `sh -c "node ..."` execs node. `docker stop` then delivers SIGTERM through
# npm to node. With dash, sh stays PID 1, ignores SIGTERM, and the container
# is only killed after the stop timeout (exit 137).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="${1:-cclaunch-test/nodeenv:latest}"
BASE="${BASE_IMAGE:-cclaunch-test/toolchain:latest}"
NPM_SPEC="${NPM_SPEC:-npm@10}"
need_build "$IMAGE" || exit 0
image_exists "$BASE" || die "base image $BASE missing (run toolchain.sh first)"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/cclaunch-nodeenv.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

apt_install_for npm npm
fetch_npm() {
  (cd "$ctx" && npm pack --silent "$NPM_SPEC" >"$ctx/packed.txt")
  local tgz
  tgz="$ctx/$(tail -n 1 "$ctx/packed.txt")"
  [ -f "$tgz" ] || die "npm pack $NPM_SPEC produced no tarball"
  mkdir -p "$ctx/npm"
  tar -xzf "$tgz" -C "$ctx/npm" --strip-components=1 --no-same-owner
  rm -f "$tgz"
  log "fetched $(basename "$tgz")"
}
timed "npm pack $NPM_SPEC" fetch_npm

cat >"$ctx/npmrc" <<'RC'
audit=false
fund=false
update-notifier=false
RC

cat >"$ctx/Dockerfile" <<DF
FROM $BASE
COPY npm /usr/lib/node_modules/npm
COPY npmrc /usr/etc/npmrc
RUN command -v node >/dev/null || { echo "nodeenv: node missing from $BASE" >&2; exit 1; } \\
 && chmod 0755 /usr/lib/node_modules/npm/bin/npm-cli.js /usr/lib/node_modules/npm/bin/npx-cli.js \\
 && ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/bin/npm \\
 && ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/bin/npx \\
 && ln -sf bash /usr/bin/sh \
 && npm --version
WORKDIR /
DF
timed "docker build $IMAGE" local_build -t "$IMAGE" "$ctx"

check() {
  docker run --rm -i --network none "$IMAGE" sh -e <<'SH'
echo "node $(node --version) npm $(npm --version) npx $(npx --version)"
mkdir -p /tmp/p && cd /tmp/p
cat > package.json <<'JSON'
{"name": "check", "version": "1.0.0", "scripts": {"start": "node start.js"}}
JSON
echo 'console.log("nodeenv npm start ok args=" + JSON.stringify(process.argv.slice(2)))' > start.js
npm install --production 2>&1 | grep -v "config production" || true
test -f package-lock.json
npm start --silent -- --peer.address 127.0.0.1:7052
SH
}
timed "check npm in $IMAGE" check >&2
log "$IMAGE: $(image_size "$IMAGE")"
