#!/usr/bin/env bash
# Run CMD against a swarm lab of its own: bring it up, export its addresses,
# run CMD, and always tear it down (on exit, Ctrl-C or SIGTERM).
#
# usage: tests/cluster/with-swarm.sh CMD...
#   e.g. tests/cluster/with-swarm.sh cargo test --test swarm_lab
#
# Exported to CMD (also written to $CCLAUNCH_SWARM_LAB/env.sh):
#   CCLAUNCH_SWARM_MANAGER    unix:// socket of the manager's dockerd
#   CCLAUNCH_SWARM_WORKERS    the workers' sockets, space-separated (w1 w2)
#   CCLAUNCH_SWARM_REGISTRY   10.99.0.1:5000, the lab registry (plain HTTP;
#                             reachable from the nodes, not from the host)
#   CCLAUNCH_SWARM_HUB_NETNS  the hub's network namespace (in-hub.sh)
#   CCLAUNCH_SWARM_HUB_ADDR   10.99.0.1, the hub's address, for test servers
#   CCLAUNCH_SWARM_LAB        the lab directory (lab.sh: its layout)
#   CCLAUNCH_SWARM_PREFIX     the lab's name prefix (namespaces, hostnames)
#   DOCKER_CONFIG             a lab-local, empty docker CLI config
# Set CCLAUNCH_SWARM_PREFIX / CCLAUNCH_SWARM_LAB to choose them; by default
# both are unique, so labs run in parallel. CCLAUNCH_SWARM_TMPFS=SIZE keeps
# the lab in memory (swarm-up.sh), CCLAUNCH_SWARM_CACHE is images.sh's cache.
#
# When CMD or the lab fails, the dockerd and registry logs are kept in
# $CCLAUNCH_SWARM_LOGS (default target/swarm-logs/<prefix>-<time>), named on
# stderr. CMD runs in its own process group; on Ctrl-C or SIGTERM the group
# gets SIGTERM (SIGKILL after 10 s). Exit status: CMD's, else the lab's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { sed -n '2,4p' "$0" >&2; exit 2; }

export CCLAUNCH_SWARM_PREFIX=${CCLAUNCH_SWARM_PREFIX:-cs$(printf %x $$)}
export CCLAUNCH_SWARM_LAB=${CCLAUNCH_SWARM_LAB:-$(mktemp -d /tmp/ccs.XXXXXX)}
REPO=$(cd "$HERE/../.." && pwd)
LOGS=${CCLAUNCH_SWARM_LOGS:-${CARGO_TARGET_DIR:-$REPO/target}/swarm-logs/$CCLAUNCH_SWARM_PREFIX-$(date +%Y%m%dT%H%M%S)}
child=
t_up=- t_cmd=-
T0=$EPOCHREALTIME

say() { echo "with-swarm $CCLAUNCH_SWARM_PREFIX: $*" >&2; }
. "$HERE/wrapper.sh"             # elapsed, stop_child

teardown() {
  local rc=$? t
  trap - EXIT INT TERM
  stop_child
  t=$EPOCHREALTIME
  if [ $rc = 0 ]; then
    "$HERE/swarm-down.sh" || rc=$?
  else
    CCLAUNCH_SWARM_KEEP_LOGS=$LOGS "$HERE/swarm-down.sh" || true
  fi
  say "lab up ${t_up}s, CMD ${t_cmd}s, lab down $(elapsed "$t")s"
  [ $rc = 0 ] || say "failed (exit $rc); lab logs in $LOGS"
  exit $rc
}
trap teardown EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

CCLAUNCH_SWARM_LOGS=$LOGS "$HERE/swarm-up.sh"
. "$CCLAUNCH_SWARM_LAB/env.sh"
t_up=$(elapsed "$T0")
T0=$EPOCHREALTIME

# Its own process group: a signal to the group reaches cargo and the test
# binaries it runs, and (unlike a plain background job) CMD does not ignore
# SIGINT.
set -m
"$@" <&0 &
child=$!
set +m
rc=0
wait "$child" || rc=$?
child=
t_cmd=$(elapsed "$T0")
exit $rc
