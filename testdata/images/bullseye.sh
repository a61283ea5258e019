#!/usr/bin/env bash
# cclaunch-test/bullseye:latest — a Debian 11 (bullseye) rootfs made with
# `debootstrap --variant=minbase`, imported with `docker import`: glibc 2.31,
# as in Fabric's own peer images for 2.5.0-2.5.10 (Ubuntu 20.04). The
# portable binary (`make portable`) is tested in it (tests/portable.rs) and
# is the sidecar image's base in tests/dockerfile.rs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="${1:-cclaunch-test/bullseye:latest}"
MIRROR="${DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}"
need_build "$IMAGE" || exit 0

[ "$(id -u)" -eq 0 ] || die "bullseye.sh needs root (debootstrap chroots)"
apt_install_for debootstrap debootstrap

work="$(mktemp -d "${TMPDIR:-/var/tmp}/cclaunch-bullseye.XXXXXX")"
root="$work/rootfs"
cleanup() {
  for m in proc sys dev/pts dev; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

bootstrap() {
  debootstrap --variant=minbase bullseye "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1
}
if ! timed "debootstrap bullseye" bootstrap; then
  tail -n 20 "$work/debootstrap.log" >&2
  die "debootstrap bullseye failed"
fi

rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
       "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/tmp/*
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf"

tar --numeric-owner -C "$root" -c . \
  | docker import \
      --change "ENV $IMAGE_PATH_ENV" \
      --change "ENV LANG=C.UTF-8" \
      --change "LABEL $TEST_IMAGE_LABEL" \
      --change 'CMD ["bash"]' \
      --message "cclaunch test image: debootstrap bullseye minbase (glibc 2.31)" \
      - "$IMAGE" >/dev/null

docker run --rm "$IMAGE" ldd --version | head -1 >&2
log "$IMAGE: $(image_size "$IMAGE")"
