#!/usr/bin/env bash
# cclaunch-test/toolchain:latest — a Debian bookworm rootfs made with ONE
# `debootstrap --variant=minbase` run (Go, gcc, libc6-dev, Node.js, JDK 17,
# ca-certificates), imported with `docker import`. No container registry.
# Base of ccenv.sh, nodeenv.sh and javaenv.sh.
#
# Notes:
#  - Debian's `npm` package fails to configure inside debootstrap, so it is not
#    included; nodeenv.sh adds npm from the npm registry tarball instead.
#  - If the full package set fails, packages are dropped one at a time (the
#    derived images then fail their own checks with a clear message).
#  - The rootfs lives in a temp dir (never in the repo) and is removed after.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="${1:-cclaunch-test/toolchain:latest}"
SUITE="${DEBOOTSTRAP_SUITE:-bookworm}"
MIRROR="${DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}"
need_build "$IMAGE" || exit 0

[ "$(id -u)" -eq 0 ] || die "toolchain.sh needs root (debootstrap chroots)"
apt_install_for debootstrap debootstrap

# Droppable in this order when the full set fails.
packages=(golang-go gcc libc6-dev nodejs openjdk-17-jdk-headless ca-certificates)
drop_order=(openjdk-17-jdk-headless nodejs golang-go gcc libc6-dev)

work="$(mktemp -d "${TMPDIR:-/var/tmp}/cclaunch-toolchain.XXXXXX")"
root="$work/rootfs"
cleanup() {
  # debootstrap unmounts on success; be safe after a failure.
  for m in proc sys dev/pts dev; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

run_debootstrap() {
  local include
  include="$(IFS=,; echo "$*")"
  rm -rf "$root"
  log "debootstrap --variant=minbase --include=$include $SUITE $MIRROR"
  debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1
}

if ! timed "debootstrap ($SUITE)" run_debootstrap "${packages[@]}"; then
  tail -n 20 "$work/debootstrap.log" >&2
  for pkg in "${drop_order[@]}"; do
    log "retrying without $pkg"
    kept=()
    for p in "${packages[@]}"; do [ "$p" = "$pkg" ] || kept+=("$p"); done
    if timed "debootstrap without $pkg" run_debootstrap "${kept[@]}"; then
      log "WARNING: $pkg dropped from $IMAGE"
      packages=("${kept[@]}")
      break
    fi
    tail -n 20 "$work/debootstrap.log" >&2
    packages=("${kept[@]}")
  done
  [ -e "$root/usr/bin/apt-get" ] || die "debootstrap failed even with a reduced package set; see log above"
fi

slim() {
  chroot "$root" apt-get clean >/dev/null 2>&1 || true
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
         "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
         "$root"/var/log/*.log "$root"/var/log/apt/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/tmp/* "$root"/root/.cache
  # Docker manages these at run time.
  : >"$root/etc/hostname"
  rm -f "$root/etc/resolv.conf"
}
timed "clean rootfs" slim

do_import() {
  tar --numeric-owner -C "$root" -c . \
    | docker import \
        --change "ENV $IMAGE_PATH_ENV" \
        --change "ENV HOME=/root" \
        --change "ENV LANG=C.UTF-8" \
        --change "LABEL $TEST_IMAGE_LABEL" \
        --change 'CMD ["bash"]' \
        --message "cclaunch test image: debootstrap $SUITE toolchain (${packages[*]})" \
        - "$IMAGE" >/dev/null
}
timed "docker import $IMAGE" do_import

docker run --rm "$IMAGE" sh -c '
  for t in go gcc node java javac; do
    if command -v $t >/dev/null; then printf "%s: %s\n" $t "$(command -v $t)"; else echo "$t: MISSING"; fi
  done
  go version 2>/dev/null; node --version 2>/dev/null; javac -version 2>&1 | head -1' >&2
log "$IMAGE: $(image_size "$IMAGE")"
