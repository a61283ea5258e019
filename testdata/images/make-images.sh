#!/usr/bin/env bash
# Make the local Docker images cclaunch's tests use, without any container
# registry. Each image is skipped when `docker image inspect` finds it.
#
# usage: testdata/images/make-images.sh [--force] [IMAGE...]
#   IMAGE: busybox shenv toolchain ccenv nodeenv javaenv bullseye (default: all, in
#          that order). `busybox shenv` alone is quick (seconds); toolchain
#          runs debootstrap (~1-2 min, needs root and deb.debian.org).
#   --force: rebuild even when present.
#
# Images (all labelled org.cclaunch.test-image=true):
#   cclaunch-test/busybox:latest    static busybox (Go runtime image, tiny base)
#   cclaunch-test/shenv:latest      busybox + /chaincode/{build,start}.sh
#   cclaunch-test/toolchain:latest  debootstrap bookworm: go, gcc, node, JDK 17
#   cclaunch-test/ccenv:latest      fabric-ccenv stand-in (Go builds)
#   cclaunch-test/nodeenv:latest    fabric-nodeenv stand-in (node 18 + npm 10)
#   cclaunch-test/javaenv:latest    fabric-javaenv stand-in (javac build.sh, start)
#   cclaunch-test/bullseye:latest   debootstrap bullseye minbase: glibc 2.31, as old peer images
set -euo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)"
. "$DIR/lib.sh"

all=(busybox shenv toolchain ccenv nodeenv javaenv bullseye)
selected=()
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force|-f) FORCE=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    busybox|shenv|toolchain|ccenv|nodeenv|javaenv|bullseye) selected+=("$arg") ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done
export FORCE
[ "${#selected[@]}" -gt 0 ] || selected=("${all[@]}")

"$REPO_ROOT/scripts/ensure-docker.sh" >&2

t_all=$(date +%s)
summary=()
for name in "${all[@]}"; do
  want=0
  for s in "${selected[@]}"; do [ "$s" = "$name" ] && want=1; done
  [ "$want" = 1 ] || continue
  image="cclaunch-test/$name:latest"
  t0=$(date +%s)
  log "== $image"
  status=built
  if [ "$FORCE" != 1 ] && image_exists "$image"; then status=present; fi
  if ! bash "$DIR/$name.sh" "$image"; then
    die "$image: recipe $name.sh failed after $(( $(date +%s) - t0 ))s"
  fi
  dt=$(( $(date +%s) - t0 ))
  summary+=("$(printf '%-32s %-8s %5ss  %s' "$image" "$status" "$dt" "$(image_size "$image")")")
done

if [ "$FORCE" = 1 ]; then
  # Old copies of rebuilt images become dangling; drop only ours.
  docker image prune -f --filter "label=$TEST_IMAGE_LABEL" >/dev/null || true
fi

log "== summary (image, built/present, seconds, size)"
for line in "${summary[@]}"; do echo "  $line" >&2; done
log "all done in $(( $(date +%s) - t_all ))s"
