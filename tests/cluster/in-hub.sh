#!/usr/bin/env bash
# Run CMD in a lab's hub network namespace, where 10.99.0.1 is: a server
# listening on 10.99.0.1:PORT there is reachable from every node (tasks with
# --network host on the workers dial it). Only the network namespace changes:
# CMD sees the host's files, users and unix sockets.
#
# The host's network namespace has no route to 10.99.0.1. Talk to such a
# server through a unix socket (they work across network namespaces) or from
# a thread that entered the hub (tests/common/swarm.rs: Lab::in_hub).
#
# usage: tests/cluster/in-hub.sh CMD...   (reads CCLAUNCH_SWARM_PREFIX, see lab.sh)
set -euo pipefail
. "$(dirname "$0")/lab.sh"
[ $# -gt 0 ] || { echo "usage: $0 CMD..." >&2; exit 2; }
# nsenter, not `ip netns exec`: the latter remounts /sys, which a dockerd or
# anything reading cgroups there would miss.
exec nsenter --net="/run/netns/$PFX-hub" -- "$@"
