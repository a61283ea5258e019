# Shared definitions of the swarm lab scripts (sourced, not run).
#
# A lab is a 3-node Docker Swarm (manager mgr, workers w1 w2) plus a registry,
# every node an extra dockerd in its own network namespace:
#
#   netns $PFX-hub : bridge br0 10.99.0.1/24, docker-registry on 10.99.0.1:5000
#   netns $PFX-mgr : eth0 10.99.0.11/24, dockerd (swarm manager)
#   netns $PFX-w1  : eth0 10.99.0.12/24, dockerd (worker)
#   netns $PFX-w2  : eth0 10.99.0.13/24, dockerd (worker)
#
# The namespaces have no default route: traffic stays inside 10.99.0.0/24 and
# loopback. Nothing is added to the host's network namespace. The host reaches
# the daemons through their unix sockets (which work across namespaces).
#
# Files, all under $LAB (keep it short: unix socket paths are limited to 108
# bytes, and the longest is $LAB/<node>/x/containerd/containerd.sock.ttrpc):
#   .cclaunch-swarm-lab        marker: swarm-down.sh removes only a marked dir
#   env.sh                     the lab's addresses (what with-swarm.sh exports)
#   dockercfg/config.json      DOCKER_CONFIG of every CLI call: no credential helpers
#   reg/{config.yml,data,pid,registry.log}
#   <node>/{daemon.json,data,x,s,docker.pid,docker.sock,dockerd.log}
#        data = data-root, x = exec-root, s = the node's containerd shim sockets
#
# Parallel labs need their own CCLAUNCH_SWARM_PREFIX and CCLAUNCH_SWARM_LAB
# (with-swarm.sh picks both); 10.99.0.0/24 is private to each lab's namespaces.

PFX=${CCLAUNCH_SWARM_PREFIX:-ccs}
LAB=${CCLAUNCH_SWARM_LAB:-/tmp/ccs}
NET=10.99.0
HUB_ADDR=$NET.1
REG=$HUB_ADDR:5000
NODES=(mgr w1 w2)
declare -A IP=([mgr]=$NET.11 [w1]=$NET.12 [w2]=$NET.13)
MARKER=$LAB/.cclaunch-swarm-lab
export DOCKER_CONFIG=$LAB/dockercfg

case $PFX in
  *[!a-z0-9]* | "" | [0-9]*) echo "CCLAUNCH_SWARM_PREFIX '$PFX': use a lower-case letter then letters/digits" >&2; exit 2 ;;
esac
[ ${#PFX} -le 12 ] || { echo "CCLAUNCH_SWARM_PREFIX '$PFX': 12 characters at most" >&2; exit 2; }
case $LAB in
  /*) ;;
  *) echo "CCLAUNCH_SWARM_LAB '$LAB': must be an absolute path" >&2; exit 2 ;;
esac

# dk NODE ARGS...: the docker CLI against one node's daemon, bounded in time
# (DK_TIMEOUT seconds, 60 by default).
dk() {
  local n=$1 rc=0; shift
  timeout "${DK_TIMEOUT:-60}" docker -H "unix://$LAB/$n/docker.sock" "$@" || rc=$?
  [ $rc != 124 ] || echo "lab $PFX: docker $1 on $n: no answer within ${DK_TIMEOUT:-60}s" >&2
  return $rc
}

# now: seconds since the epoch with microseconds (bash 5).
now() { echo "$EPOCHREALTIME"; }
# since T0: seconds elapsed since T0, 2 decimals.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# wait_until SECONDS WHAT CMD...: polls CMD every 0.1 s until it succeeds;
# fails naming WHAT after SECONDS.
wait_until() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then echo "lab $PFX: $what: not within ${limit}s" >&2; return 1; fi
    sleep 0.1
  done
}

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

not() { ! "$@"; }

# ours PID: true when PID is a daemon of this lab: dockerd, containerd, a
# containerd shim or docker-registry whose arguments name a path under $LAB/.
ours() {
  local argv
  mapfile -d '' -t argv 2>/dev/null < "/proc/$1/cmdline" || return 1
  [ ${#argv[@]} -gt 1 ] || return 1
  case ${argv[0]##*/} in
    dockerd | containerd | containerd-shim-runc-v2 | docker-registry) ;;
    *) return 1 ;;
  esac
  case " ${argv[*]:1}" in *" $LAB/"*) return 0 ;; esac
  return 1
}
