#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#
# Idempotent: reuses a running engine; otherwise installs docker.io (Debian)
# when dockerd is missing and starts dockerd in the background.
#   log: ${TMPDIR:-/tmp}/cclaunch-dockerd.log
# Needs root (apt-get, dockerd) only when it has to install or start.
set -euo pipefail

log_file="${TMPDIR:-/tmp}/cclaunch-dockerd.log"
wait_secs="${CCLAUNCH_DOCKERD_WAIT:-60}"

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

dockerd_running() {
  if command -v pgrep >/dev/null 2>&1; then pgrep -x dockerd >/dev/null 2>&1
  else pidof dockerd >/dev/null 2>&1; fi
}

engine_up() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

if engine_up; then
  echo "ensure-docker: reused running Docker engine ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  echo "ensure-docker: dockerd not found, installing docker.io with apt-get" >&2
  sudo_if_needed apt-get update
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io
fi

# If a daemon is already starting (e.g. by systemd after install), give it a
# moment before starting our own.
for _ in 1 2 3 4 5; do
  engine_up && { echo "ensure-docker: reused Docker engine (came up after install)"; exit 0; }
  dockerd_running || break
  sleep 1
done

if ! dockerd_running; then
  mkdir -p "$(dirname "$log_file")"
  echo "ensure-docker: starting dockerd (log: $log_file)" >&2
  if [ "$(id -u)" -eq 0 ]; then
    nohup dockerd >"$log_file" 2>&1 </dev/null &
  else
    nohup sudo dockerd >"$log_file" 2>&1 </dev/null &
  fi
fi

start=$(date +%s)
while ! engine_up; do
  if [ $(( $(date +%s) - start )) -ge "$wait_secs" ]; then
    echo "ensure-docker: ERROR: Docker engine did not answer 'docker info' within ${wait_secs}s" >&2
    echo "ensure-docker: last lines of $log_file:" >&2
    tail -n 40 "$log_file" >&2 2>/dev/null || echo "(no log)" >&2
    exit 1
  fi
  sleep 1
done
echo "ensure-docker: started Docker engine ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')) in $(( $(date +%s) - start ))s"
