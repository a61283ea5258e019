#!/usr/bin/env bash
# Tear a Kubernetes lab down: every process, cgroup, namespace, mount point
# and file it made. Idempotent (safe on a half-made lab or none). Touches
# only what is provably the lab's: processes in its cgroups /$PFX, the
# namespace $NETNS, the host mount points listed in $LAB/made-dirs, and
# $LAB if it carries the lab marker.
#
# Nothing is stopped gracefully: the whole lab is thrown away, and every
# mount it made lives in its private mount namespace, which vanishes with
# its last process. So: SIGKILL to everything in the cgroups, then remove.
#
# usage: [CCLAUNCH_K8S_PREFIX=cck8s] [CCLAUNCH_K8S_LAB=/tmp/cck8s] \
#        [CCLAUNCH_K8S_KEEP_LOGS=DIR] tests/cluster/k8s-down.sh
#   CCLAUNCH_K8S_KEEP_LOGS: copy the daemons' logs there first.
# Exit status 1 when something could not be removed (it is named).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/k8s.sh"
T0=$(now)
step() { [ -z "${CCLAUNCH_K8S_VERBOSE:-}" ] || printf 'k8s-down %s: %6.2fs %s\n' "$PFX" "$(since "$T0")" "$*" >&2; }

# 1. Every process in the lab's cgroups (daemons, shims, containers), until none is left.
#    The freezer first, when there is one: no process forks while the others are killed.
frozen=
if [ -d "/sys/fs/cgroup/freezer/$PFX" ]; then
  echo FROZEN > "/sys/fs/cgroup/freezer/$PFX/freezer.state" 2>/dev/null && frozen=1
fi
# Also whatever else runs in the lab's network namespace (clients and test
# servers started with in-k8s.sh): nothing outside the lab belongs there.
ns_inode=$(stat -L -c %i "$NETNS_PATH" 2>/dev/null)
in_netns_pids() {
  [ -n "$ns_inode" ] || return 0
  local d
  for d in /proc/[0-9]*; do
    [ "$(stat -L -c %i "$d/ns/net" 2>/dev/null)" = "$ns_inode" ] && echo "${d#/proc/}"
  done
}
kill_all() { local p; for p in $(lab_pids) $(in_netns_pids); do kill -KILL "$p" 2>/dev/null; done; }
kill_all
[ -z "$frozen" ] || echo THAWED > "/sys/fs/cgroup/freezer/$PFX/freezer.state" 2>/dev/null
none_left() { kill_all; [ -z "$(lab_pids)$(in_netns_pids)" ]; }
wait_until 20 "processes in cgroup /$PFX gone" none_left
step "processes killed"

# 2. cgroups, deepest first (empty once their processes are gone).
cgroups_left() {
  local d
  for d in $(cgroup_dirs); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  [ -n "$(cgroup_dirs)" ]
}
wait_until 10 "cgroups /$PFX removed" not cgroups_left
step "cgroups removed"

# 3. The network namespace: the pod bridge and any veth go with it.
[ -e "$NETNS_PATH" ] && ip netns del "$NETNS"
step "netns deleted"

# 4. Host mounts under $LAB (none expected: the daemons mount in their own
#    namespace; $LAB itself may be a tmpfs), then the mount points made on the host.
awk -v lab="$LAB/" 'index($5, lab) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
  umount -l "$m"
done
if [ -e "$LAB/made-dirs" ]; then
  tac "$LAB/made-dirs" | while read -r d; do rmdir "$d" 2>/dev/null || echo "k8s-down $PFX: $d is not empty, left" >&2; done
fi
step "mounts checked"

# 5. Files (the logs first, when asked).
if [ -n "${CCLAUNCH_K8S_KEEP_LOGS:-}" ] && [ -e "$MARKER" ]; then
  mkdir -p "$CCLAUNCH_K8S_KEEP_LOGS"
  cp -r "$LAB/logs/." "$CCLAUNCH_K8S_KEEP_LOGS/" 2>/dev/null
  echo "k8s-down $PFX: logs kept in $CCLAUNCH_K8S_KEEP_LOGS" >&2
fi
if awk -v lab="$LAB" -v src="cclaunch-k8s-$PFX" '$5 == lab && $(NF - 1) == src { found = 1 } END { exit !found }' /proc/self/mountinfo; then
  umount "$LAB" && rmdir "$LAB"          # CCLAUNCH_K8S_TMPFS: all in memory
elif [ -e "$MARKER" ]; then
  rm -rf --one-file-system "$LAB"
fi
step "files removed"

# Check: say what is left, if anything.
rc=0
[ -z "$(lab_pids)" ] || { echo "k8s-down $PFX: processes left: $(lab_pids | tr '\n' ' ')" >&2; rc=1; }
[ -z "$(cgroup_dirs)" ] || { echo "k8s-down $PFX: cgroups left: $(cgroup_dirs | tr '\n' ' ')" >&2; rc=1; }
[ ! -e "$NETNS_PATH" ] || { echo "k8s-down $PFX: netns $NETNS left" >&2; rc=1; }
[ ! -e "$MARKER" ] || { echo "k8s-down $PFX: $LAB left" >&2; rc=1; }
printf 'k8s-down %s: %.2fs%s\n' "$PFX" "$(since "$T0")" "$([ $rc = 0 ] || echo ' (incomplete)')" >&2
exit $rc
