# Shared helpers for the cclaunch test-image recipes (sourced, not run).
# Every image carries LABEL org.cclaunch.test-image=true.

TEST_IMAGE_LABEL="org.cclaunch.test-image=true"
IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGES_DIR/../.." && pwd)"
IMAGE_PATH_ENV="PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# True when the image must be (re)built: FORCE=1 or the image is missing.
# Prints the "skip" line otherwise.
need_build() {
  if [ "${FORCE:-0}" = 1 ] || ! image_exists "$1"; then return 0; fi
  log "$1: already present, skipped (use --force to rebuild)"
  return 1
}

image_size() {
  docker image inspect --format '{{.Size}}' "$1" 2>/dev/null \
    | awk '{ printf "%.1f MB", $1/1000/1000 }'
}

# Run "$@" and log how long it took under the given label.
timed() {
  local label="$1"; shift
  local t0 t1 rc=0
  t0=$(date +%s)
  log "$label ..."
  "$@" || rc=$?
  t1=$(date +%s)
  if [ "$rc" -eq 0 ]; then log "$label done in $((t1 - t0))s"
  else log "$label FAILED (rc=$rc) after $((t1 - t0))s"; fi
  return "$rc"
}

# Install Debian packages when the given command is missing.
apt_install_for() {
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $* (for $cmd)"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
}

apt_update_once() {
  if [ -z "${_CCLAUNCH_APT_UPDATED:-}" ]; then
    apt-get update >&2
    _CCLAUNCH_APT_UPDATED=1
  fi
}

# docker build with the classic builder: it resolves FROM against local
# images without contacting a registry (no --pull), and needs no buildx.
# Output is shown only on failure (the client may print a deprecation
# notice for the classic builder).
local_build() {
  local out rc=0
  out="$(mktemp "${TMPDIR:-/tmp}/cclaunch-build.XXXXXX")"
  DOCKER_BUILDKIT=0 docker build --label "$TEST_IMAGE_LABEL" "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    log "docker build $* failed (rc=$rc):"
    tail -n 60 "$out" >&2
  fi
  rm -f "$out"
  return "$rc"
}
