#!/usr/bin/env bash
# Tear a swarm lab down: every process, cgroup, namespace and file it made.
# Idempotent (safe on a half-made lab or none). Touches only what is provably
# the lab's: daemons whose command line names $LAB/, the cgroups /$PFX-<node>,
# the namespaces $PFX-*, and $LAB if it carries the lab marker.
#
# usage: [CCLAUNCH_SWARM_PREFIX=ccs] [CCLAUNCH_SWARM_LAB=/tmp/ccs] \
#        [CCLAUNCH_SWARM_KEEP_LOGS=DIR] tests/cluster/swarm-down.sh
#   CCLAUNCH_SWARM_KEEP_LOGS: copy the daemon and registry logs there first.
# Exit status 1 when something could not be removed (it is named).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lab.sh"
T0=$(now)
DK_TIMEOUT=10
step() { [ -z "${CCLAUNCH_SWARM_VERBOSE:-}" ] || printf 'swarm-down %s: %6.2fs %s\n' "$PFX" "$(since "$T0")" "$*" >&2; }

# 1. No more scheduling, then task containers gone at once, so each dockerd stops quickly.
if [ -S "$LAB/mgr/docker.sock" ]; then
  services=$(dk mgr service ls -q 2>/dev/null)
  [ -z "$services" ] || dk mgr service rm $services >/dev/null 2>&1
fi
for n in "${NODES[@]}"; do
  [ -S "$LAB/$n/docker.sock" ] || continue
  containers=$(dk "$n" ps -aq 2>/dev/null)
  [ -z "$containers" ] || dk "$n" rm -f $containers >/dev/null 2>&1
done

step "services and containers removed"

# 2. The dockerds, by their pidfiles (each stops the containerd it started).
stopping=()
for n in "${NODES[@]}"; do
  p=$(cat "$LAB/$n/docker.pid" 2>/dev/null) || continue
  ours "$p" && kill -TERM "$p" && stopping+=("$p")
done
any_alive() { local p; for p in "$@"; do alive "$p" && return 0; done; return 1; }
if [ ${#stopping[@]} -gt 0 ] && ! wait_until 20 "dockerds exit on SIGTERM" not any_alive "${stopping[@]}"; then
  for p in "${stopping[@]}"; do ours "$p" && kill -KILL "$p"; done
fi

step "dockerds stopped"

# 3. What may outlive them: container processes (in the lab's cgroups), shims
#    of a killed dockerd, the registry. Each by pid: in a lab cgroup, or ours().
for n in "${NODES[@]}"; do
  for f in /sys/fs/cgroup/*/"$PFX-$n" /sys/fs/cgroup/"$PFX-$n"; do
    [ -d "$f" ] || continue
    find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null; done
  done
done
for d in /proc/[0-9]*; do
  ours "${d#/proc/}" && kill -KILL "${d#/proc/}" 2>/dev/null
done
leftover() { local d; for d in /proc/[0-9]*; do ours "${d#/proc/}" && alive "${d#/proc/}" && return 0; done; return 1; }
wait_until 10 "lab processes gone" not leftover

step "leftover processes gone"

# 4. cgroups made by --cgroup-parent (empty once their processes are gone).
cgroups_left() {
  local g left=1
  for n in "${NODES[@]}"; do
    for g in /sys/fs/cgroup/*/"$PFX-$n" /sys/fs/cgroup/"$PFX-$n"; do
      [ -d "$g" ] || continue
      find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null
      [ -d "$g" ] && left=0
    done
  done
  return $left
}
wait_until 10 "cgroups /$PFX-* removed" not cgroups_left

step "cgroups removed"

# 5. Namespaces: deleting one destroys the veths and the bridge in it.
for ns in hub "${NODES[@]}"; do
  [ -e "/run/netns/$PFX-$ns" ] && ip netns del "$PFX-$ns"
done

step "namespaces deleted"

# 6. Mounts under $LAB in the host's mount table (none expected: the dockerds
#    mount in their own namespaces; $LAB itself may be a tmpfs), deepest first.
awk -v lab="$LAB/" 'index($5, lab) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
  umount -l "$m"
done

step "mounts checked"

# 7. Files (the logs first, when asked).
if [ -n "${CCLAUNCH_SWARM_KEEP_LOGS:-}" ] && [ -e "$MARKER" ]; then
  mkdir -p "$CCLAUNCH_SWARM_KEEP_LOGS"
  for n in "${NODES[@]}"; do cp "$LAB/$n/dockerd.log" "$CCLAUNCH_SWARM_KEEP_LOGS/dockerd-$n.log" 2>/dev/null; done
  cp "$LAB/reg/registry.log" "$CCLAUNCH_SWARM_KEEP_LOGS/" 2>/dev/null
  echo "swarm-down $PFX: logs kept in $CCLAUNCH_SWARM_KEEP_LOGS" >&2
fi
if awk -v lab="$LAB" -v src="cclaunch-swarm-$PFX" '$5 == lab && $(NF - 1) == src { found = 1 } END { exit !found }' /proc/self/mountinfo; then
  umount "$LAB" && rmdir "$LAB"          # CCLAUNCH_SWARM_TMPFS: all in memory
elif [ -e "$MARKER" ]; then
  rm -rf --one-file-system "$LAB"
fi

step "files removed"

# Check: say what is left, if anything.
rc=0
leftover && { echo "swarm-down $PFX: processes left: $(for d in /proc/[0-9]*; do ours "${d#/proc/}" && echo -n "${d#/proc/} "; done)" >&2; rc=1; }
for ns in hub "${NODES[@]}"; do
  [ -e "/run/netns/$PFX-$ns" ] && { echo "swarm-down $PFX: netns $PFX-$ns left" >&2; rc=1; }
done
cgroups_left && { echo "swarm-down $PFX: cgroups left: $(ls -d /sys/fs/cgroup/*/"$PFX"-* 2>/dev/null | tr '\n' ' ')" >&2; rc=1; }
[ -e "$MARKER" ] && { echo "swarm-down $PFX: $LAB left" >&2; rc=1; }
printf 'swarm-down %s: %.2fs%s\n' "$PFX" "$(since "$T0")" "$([ $rc = 0 ] || echo ' (incomplete)')" >&2
exit $rc
