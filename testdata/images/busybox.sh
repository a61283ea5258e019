#!/usr/bin/env bash
# cclaunch-test/busybox:latest — Debian's static busybox, imported with
# `docker import` (no registry). Used as the Go runtime image (static
# binaries) and as a tiny base for fast tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="${1:-cclaunch-test/busybox:latest}"
need_build "$IMAGE" || exit 0

work="$(mktemp -d "${TMPDIR:-/tmp}/cclaunch-busybox.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Debian's busybox-static ships /bin/busybox. It is installed when missing,
# unless the dynamic `busybox` package is there (the two conflict and
# initramfs-tools may want the dynamic one): then the binary is taken from
# the busybox-static .deb (apt-get download + dpkg-deb -x) without
# installing anything.
installed() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
bb=""
if ! installed busybox-static && ! installed busybox; then
  log "installing busybox-static"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2
fi
if installed busybox-static; then
  bb=/bin/busybox
else
  log "busybox (dynamic) is installed; taking /bin/busybox from the busybox-static .deb"
  apt_update_once
  chmod 0755 "$work"   # apt's _apt user downloads into it
  (cd "$work" && apt-get -o APT::Sandbox::User=root download busybox-static >&2)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"
  bb="$work/deb/bin/busybox"
fi
[ -x "$bb" ] || die "no busybox binary at $bb"

root="$work/rootfs"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,dev,proc,sys,var/run}
install -m 0755 "$bb" "$root/bin/busybox"

# One symlink per applet, at the path busybox itself proposes.
if "$bb" --list-full >/dev/null 2>&1; then
  "$bb" --list-full
else
  "$bb" --list | sed 's|^|bin/|'
fi | while read -r applet; do
  [ -n "$applet" ] || continue
  case "$applet" in bin/busybox) continue ;; esac
  [ -e "$root/$applet" ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -s /bin/busybox "$root/$applet"
done
[ -e "$root/bin/sh" ] || ln -s /bin/busybox "$root/bin/sh"

install -d -m 1777 "$root/tmp"
chmod 0700 "$root/root"
cat >"$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat >"$root/etc/group" <<'GR'
root:x:0:
nogroup:x:65534:
GR

tar --numeric-owner --owner=0 --group=0 -C "$root" -c . \
  | docker import \
      --change "ENV $IMAGE_PATH_ENV" \
      --change "LABEL $TEST_IMAGE_LABEL" \
      --change 'CMD ["sh"]' \
      --message "cclaunch test image: static busybox" \
      - "$IMAGE" >/dev/null

docker run --rm "$IMAGE" sh -c 'echo hello from $(busybox | head -1)' >&2
log "$IMAGE: $(image_size "$IMAGE")"
