#!/usr/bin/env bash
# Build the lab's Kubernetes binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl) and its pause binary from Debian's
# `kubernetes` source package, once: they are cached in
# $CCLAUNCH_K8S_CACHE/<version>-<recipe hash>/bin (k8s.sh), and a warm run
# only checks that they are there.
#
# usage: tests/cluster/k8s-build.sh        (root; prints the bin directory)
#
# How (offline: no Go module proxy or GitHub is reachable, only Debian):
# - the source comes through `apt-get source` with a private apt state whose
#   deb-src entries are made from the machine's own Debian sources: the
#   system's apt configuration and lists are not touched. dpkg-source applies
#   Debian's patches (kubectl's CVE-2021-25743 fix), then ours
#   (tests/cluster/k8s-patches):
#     kubelet-no-cloud-credential-providers  the stock kubelet asks a cloud
#         provider's link-local metadata address for credentials at start;
#     kubelet-sysctl-warn  report, never rewrite, the host's kernel settings;
#   and everything is built with the `providerless` tag (no cloud providers);
# - Debian's Go 1.19 in GOPATH mode (the tree's old go.mod makes -mod=vendor
#   refuse it); reflect2 1.0.1, vendored, breaks on Go >= 1.18: Debian's
#   reflect2 1.0.2 and json-iterator 1.1.12 replace it;
# - pkg/generated/openapi, which the release tarball lacks, is generated with
#   the vendored openapi-gen, as build/root/Makefile.generated_files does;
# - pause: build/pause/linux/pause.c, static.
# The build tree and Go's build cache are removed afterwards (about 2 GB).
# Cold: about 4 minutes on 2 idle cores; 11.5 at nice 10 on a busy one.
set -euo pipefail
. "$(dirname "$0")/k8s.sh"
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1   # no service restarts by apt hooks
T0=$(now)
step() { printf 'k8s-build: %7.1fs %s\n' "$(since "$T0")" "$*" >&2; }

OUT=$(dirname "$BIN")
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
complete() { [ -e "$OUT/complete" ]; }
if complete; then echo "$BIN"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "k8s-build: needs root (apt-get)" >&2; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9
if complete; then echo "$BIN"; exit 0; fi

need=()
for p in golang-go golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev dpkg-dev gcc libc6-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  # A fresh machine may have no package lists yet.
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

W=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf --one-file-system "$W"' EXIT

# --- source: Debian's package, through a private apt state ----------------------------------------
SRC=$CACHE/src
mkdir -p "$W/apt/lists/partial" "$W/apt/parts" "$SRC"
dsc=$SRC/kubernetes_$DEB_VERSION.dsc
if [ ! -e "$dsc" ]; then
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    # deb822 files: the same archives as deb-src entries (Debian's own only)
    if grep -q 'debian' "$f"; then sed 's/^Types: deb$/Types: deb-src/' "$f" > "$W/apt/parts/${f##*/}"; fi
  done
  if [ -e /etc/apt/sources.list ]; then
    sed -n 's/^deb \(.*debian.*\)/deb-src \1/p' /etc/apt/sources.list > "$W/apt/parts/from-list.list"
  fi
  # The binary caches too: apt would otherwise rewrite the system's
  # /var/cache/apt/*pkgcache.bin from these private lists.
  apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$W/apt/parts"
       -o "Dir::State::Lists=$W/apt/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
       -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq
  (cd "$W" && apt-get "${apt[@]}" source -qq --download-only "kubernetes=$DEB_VERSION")
  mv "$W"/kubernetes_* "$SRC/"
  step "source package downloaded"
fi

GOPATH=$W/gopath
K=$GOPATH/src/k8s.io/kubernetes
mkdir -p "$(dirname "$K")"
dpkg-source -x "$dsc" "$K" >/dev/null 2>"$W/dpkg-source.log" || { cat "$W/dpkg-source.log" >&2; exit 1; }
cd "$K"
for p in "$K8S_HERE"/k8s-patches/*.patch; do
  patch -p1 --forward --batch --quiet < "$p" || { echo "k8s-build: $p does not apply" >&2; exit 1; }
done
for p in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "vendor/$p"
  mkdir -p "vendor/$p"
  cp -a "/usr/share/gocode/src/$p/." "vendor/$p/"
  find "vendor/$p" -name '*_test.go' -delete
done
step "source unpacked, patched"

export GO111MODULE=off GOPATH CGO_ENABLED=0 GOFLAGS= GOCACHE=$W/gocache GOTMPDIR=$W
go version >&2

# --- generated OpenAPI definitions ---------------------------------------------------------------
go build -o "$W/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
dirs=$(grep -Rl --include='*.go' '^// *+k8s:openapi-gen=' pkg cmd plugin vendor \
  | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' -e '/testdata/' \
  | xargs -n1 dirname | LC_ALL=C sort -u | sed 's#^#k8s.io/kubernetes/#' | paste -sd,)
"$W/openapi-gen" -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
  -h hack/boilerplate/boilerplate.generatego.txt -r "$W/openapi-report.txt"
step "openapi generated"

# --- binaries ------------------------------------------------------------------------------------
ld="-s -w"
for v in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ld+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=20 -X $v.gitTreeState=clean"
  ld+=" -X $v.gitCommit=faecb196815e248d3ecfb03c680a4507229c2a56 -X $v.buildDate=2021-01-13T13:20:00Z"
done
mkdir -p "$W/out/bin"
for x in "${BINS[@]}"; do
  go build -tags providerless -ldflags="$ld" -o "$W/out/bin/$x" "./cmd/$x"
  step "$x ($(stat -c %s "$W/out/bin/$x") bytes)"
done
gcc -Os -static -Wall -DVERSION=v3.2-cclaunch -o "$W/out/bin/pause" build/pause/linux/pause.c
strip "$W/out/bin/pause"

"$W/out/bin/kubelet" --version | grep -qx "Kubernetes $K8S_VERSION" \
  || { echo "k8s-build: kubelet reports '$("$W/out/bin/kubelet" --version)'" >&2; exit 1; }
{
  echo "Kubernetes $K8S_VERSION from Debian's kubernetes $DEB_VERSION, built $(date -u +%FT%TZ)"
  go version
  echo "patches: $(cd "$K8S_HERE/k8s-patches" && echo *.patch)"
  echo "build tags: providerless"
} > "$W/out/BUILD-INFO"
rm -rf "$OUT"
mv "$W/out" "$OUT"
touch "$OUT/complete"
step "built into $OUT"
echo "$BIN"
