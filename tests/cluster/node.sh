#!/usr/bin/env bash
# Start or kill one node's dockerd in a running lab (tests use it to take a
# worker down under a running task and bring it back).
#
# usage: tests/cluster/node.sh start|kill|stop NODE     (NODE: mgr w1 w2)
#   start  starts dockerd with the node's config file (same roots, so the node
#          keeps its swarm identity) and returns once its API answers
#   kill   SIGKILL, as a crashed machine: its containers keep running
#   stop   SIGTERM, then waits until the process is gone
# Reads CCLAUNCH_SWARM_PREFIX and CCLAUNCH_SWARM_LAB (see lab.sh).
set -euo pipefail
. "$(dirname "$0")/lab.sh"

op=${1:-}; n=${2:-}
case " ${NODES[*]} " in *" $n "*) ;; *) echo "usage: $0 start|kill|stop mgr|w1|w2" >&2; exit 2 ;; esac
R=$LAB/$n

pid() {
  local p; p=$(cat "$R/docker.pid" 2>/dev/null) || return 1
  ours "$p" && echo "$p"
}

case $op in
  start)
    if p=$(pid); then echo "node $n: dockerd already runs (pid $p)" >&2; exit 1; fi
    # A dockerd killed a moment ago, and the containerd it ran, can still be
    # zombies: dockerd counts a pid file whose /proc entry exists as a
    # running daemon, refuses to start ("pid file found") or waits for that
    # containerd ("timeout waiting for containerd to start"). Neither file
    # belongs to a live daemon now.
    rm -f "$R/docker.pid"
    if c=$(cat "$R/x/containerd/containerd.pid" 2>/dev/null) && ! alive "$c"; then
      rm -f "$R/x/containerd/containerd.pid"
    fi
    # Its own mount namespace keeps overlay/secret mounts off the host's table;
    # its own UTS namespace gives it its own hostname (the swarm node name).
    # /run/containerd is a private tmpfs with the node's shim directory bound
    # at s/: dockerd then never takes a system containerd it finds at
    # /run/containerd/containerd.sock, and a restarted dockerd finds the shims
    # its predecessor left running.
    mkdir -p /run/containerd "$R/s"
    setsid nsenter --net="/run/netns/$PFX-$n" -- \
      unshare --mount --uts --propagation slave -- /bin/sh -c '
        set -e
        hostname "$1"
        mount -t tmpfs -o mode=0711 tmpfs /run/containerd
        mkdir /run/containerd/s
        mount --bind "$2/s" /run/containerd/s
        exec dockerd --config-file "$2/daemon.json"' sh "$PFX-$n" "$R" \
      </dev/null >>"$R/dockerd.log" 2>&1 &
    wait_until 30 "dockerd $n answering (log: $R/dockerd.log)" dk "$n" version
    ;;
  kill)
    p=$(pid) || { echo "node $n: no dockerd runs" >&2; exit 1; }
    kill -KILL "$p"
    wait_until 10 "dockerd $n (pid $p) gone after SIGKILL" not alive "$p"
    ;;
  stop)
    p=$(pid) || exit 0
    kill -TERM "$p"
    wait_until 20 "dockerd $n (pid $p) gone after SIGTERM" not alive "$p"
    ;;
  *) echo "usage: $0 start|kill|stop mgr|w1|w2" >&2; exit 2 ;;
esac
