#!/usr/bin/env bash
# Kill one daemon of a running lab, or start it again as it was: for tests
# of a component that dies under running chaincode (the API server).
#
# usage: tests/cluster/k8s-daemon.sh kill|start NAME
#   NAME: as in $LAB/pids (kube-apiserver, etcd, kubelet, ...)
#   kill:  SIGKILL, and wait until it is gone; its command line is kept in
#          $LAB/NAME.cmdline
#   start: start it again from that command line, in the lab's namespaces
#          and cgroup (k8s.sh: start), logging to the same file
# Reads CCLAUNCH_K8S_PREFIX and CCLAUNCH_K8S_LAB (k8s.sh).
set -euo pipefail
. "$(dirname "$0")/k8s.sh"
op=${1:-} name=${2:-}
fail() { echo "k8s-daemon $PFX: $*" >&2; exit 1; }
case $name in "" | *[!a-z0-9-]*) fail "usage: $0 kill|start NAME (a name in $LAB/pids)" ;; esac
[ -e "$MARKER" ] || fail "no lab at $LAB"
case $op in
  kill)
    pid=$(awk -v n="$name" '$1 == n { p = $2 } END { print p }' "$LAB/pids")
    [ -n "$pid" ] && alive "$pid" || fail "$name is not running"
    cp "/proc/$pid/cmdline" "$LAB/$name.cmdline"
    kill -KILL "$pid"
    wait_until 10 "$name (pid $pid) gone" not alive "$pid"
    ;;
  start)
    [ -s "$LAB/$name.cmdline" ] || fail "no command line of $name kept (kill it with this script first)"
    mapfile -d '' args < "$LAB/$name.cmdline"
    sed -i "/^$name /d" "$LAB/pids"
    start "$name" "${args[@]}"
    ;;
  *) fail "usage: $0 kill|start NAME" ;;
esac
