#!/usr/bin/env bash
# Bring a swarm lab up (see lab.sh for its shape): namespaces and bridge, the
# registry, three dockerds, swarm init with a 1 s dispatcher heartbeat (a
# killed node is seen down within seconds), two joins, every node Ready.
# On success writes $LAB/env.sh; on failure tears down what it made (keeping
# the daemon logs in $CCLAUNCH_SWARM_LOGS, default $LAB-logs).
#
# usage: [CCLAUNCH_SWARM_PREFIX=ccs] [CCLAUNCH_SWARM_LAB=/tmp/ccs] [CCLAUNCH_SWARM_TMPFS=SIZE] \
#        tests/cluster/swarm-up.sh
#   CCLAUNCH_SWARM_TMPFS: keep the lab (image layers included) in a tmpfs of
#   SIZE (e.g. 6g) mounted on $LAB: for tests that move the big images.
# Needs root, iproute2, util-linux (nsenter, unshare, setsid), docker.io 20.10
# (dockerd, containerd, runc, docker CLI) and docker-registry.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lab.sh"

T0=$(now)
step() { printf 'swarm-up %s: %6.2fs %s\n' "$PFX" "$(since "$T0")" "$*" >&2; }
fail() { echo "swarm-up $PFX: $*" >&2; exit 1; }

# --- preflight: nothing is made before these pass ------------------------------------------------
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces, mounts, dockerd)"
for c in ip nsenter unshare setsid dockerd containerd runc docker docker-registry; do
  command -v "$c" >/dev/null || fail "'$c' not found (see docs/TESTING.md for the packages)"
done
longest="$LAB/w2/x/containerd/containerd.sock.ttrpc"
[ ${#longest} -lt 108 ] || fail "CCLAUNCH_SWARM_LAB '$LAB' is too long for unix socket paths ($longest)"
for ns in hub "${NODES[@]}"; do
  [ ! -e "/run/netns/$PFX-$ns" ] || fail "netns $PFX-$ns exists: another lab with this prefix? (swarm-down.sh)"
done
[ ! -e "$LAB" ] || [ -z "$(ls -A "$LAB")" ] || fail "$LAB is not empty (swarm-down.sh)"

on_exit() {
  local rc=$?
  [ $rc = 0 ] && return
  echo "swarm-up $PFX: failed (rc $rc); tearing down" >&2
  CCLAUNCH_SWARM_KEEP_LOGS=${CCLAUNCH_SWARM_LOGS:-$LAB-logs} "$HERE/swarm-down.sh" >&2 || true
}
trap on_exit EXIT

mkdir -p "$LAB"
if [ -n "${CCLAUNCH_SWARM_TMPFS:-}" ]; then
  # Image layers are tens of thousands of small files: on a busy disk,
  # extracting and deleting them dominates; in memory both are quick.
  mount -t tmpfs -o "size=$CCLAUNCH_SWARM_TMPFS,mode=0755" "cclaunch-swarm-$PFX" "$LAB"
fi
mkdir -p "$LAB/reg/data" "$DOCKER_CONFIG"
touch "$MARKER"
echo '{}' > "$DOCKER_CONFIG/config.json"

# --- network: the hub's bridge, one namespace per node, a veth pair into the bridge --------------
# Both ends of each veth are made inside lab namespaces: the host's never sees them.
ip netns add "$PFX-hub"
ip -n "$PFX-hub" link set lo up
ip -n "$PFX-hub" link add br0 type bridge
ip -n "$PFX-hub" addr add "$HUB_ADDR/24" dev br0
ip -n "$PFX-hub" link set br0 up
for n in "${NODES[@]}"; do
  ip netns add "$PFX-$n"
  ip -n "$PFX-$n" link set lo up
  ip -n "$PFX-hub" link add "v-$n" type veth peer name eth0 netns "$PFX-$n"
  ip -n "$PFX-hub" link set "v-$n" master br0 up
  ip -n "$PFX-$n" addr add "${IP[$n]}/24" dev eth0
  ip -n "$PFX-$n" link set eth0 up
done
step "namespaces and bridge"

# --- registry (Debian's docker-registry, distribution 2.8) in the hub namespace -------------------
"$HERE/registry-config.sh" "$LAB/reg/data" "$REG" > "$LAB/reg/config.yml"
setsid nsenter --net="/run/netns/$PFX-hub" -- docker-registry serve "$LAB/reg/config.yml" \
  </dev/null >>"$LAB/reg/registry.log" 2>&1 &
echo $! > "$LAB/reg/pid"

starting=() joining=()
# --- dockerds: everything in the node's config file, so a restart is the same command -------------
for n in "${NODES[@]}"; do
  R=$LAB/$n
  mkdir -p "$R"
  cat > "$R/daemon.json" <<JSON
{
  "data-root": "$R/data",
  "exec-root": "$R/x",
  "pidfile": "$R/docker.pid",
  "hosts": ["unix://$R/docker.sock"],
  "iptables": false,
  "ip-forward": false,
  "ip-masq": false,
  "bridge": "none",
  "storage-driver": "overlay2",
  "insecure-registries": ["$REG"],
  "cgroup-parent": "/$PFX-$n",
  "log-level": "info"
}
JSON
  "$HERE/node.sh" start "$n" & starting+=($!)
done
for job in "${starting[@]}"; do wait "$job" || fail "a dockerd did not come up (logs: $LAB/*/dockerd.log)"; done
registry_up() { nsenter --net="/run/netns/$PFX-hub" -- bash -c "exec 3<>/dev/tcp/$HUB_ADDR/5000"; }
wait_until 10 "registry on $REG (log: $LAB/reg/registry.log)" registry_up
step "3 dockerds and the registry answer"

# --- swarm ---------------------------------------------------------------------------------------
dk mgr swarm init --advertise-addr "${IP[mgr]}" --listen-addr "${IP[mgr]}:2377" \
  --dispatcher-heartbeat 1s >/dev/null
token=$(dk mgr swarm join-token -q worker)
for n in w1 w2; do
  dk "$n" swarm join --token "$token" --advertise-addr "${IP[$n]}" \
    --listen-addr "${IP[$n]}:2377" "${IP[mgr]}:2377" >/dev/null & joining+=($!)
done
for job in "${joining[@]}"; do wait "$job" || fail "a worker did not join (logs: $LAB/w*/dockerd.log)"; done
all_ready() { [ "$(dk mgr node ls --format '{{.Status}}' | grep -c '^Ready$')" = 3 ]; }
wait_until 30 "3 nodes Ready" all_ready
step "swarm: $(dk mgr node ls --format '{{.Hostname}}={{.Status}}' | sort | tr '\n' ' ')"

cat > "$LAB/env.sh" <<ENV
export CCLAUNCH_SWARM_PREFIX=$PFX
export CCLAUNCH_SWARM_LAB=$LAB
export CCLAUNCH_SWARM_MANAGER=unix://$LAB/mgr/docker.sock
export CCLAUNCH_SWARM_WORKERS="unix://$LAB/w1/docker.sock unix://$LAB/w2/docker.sock"
export CCLAUNCH_SWARM_REGISTRY=$REG
export CCLAUNCH_SWARM_HUB_NETNS=$PFX-hub
export CCLAUNCH_SWARM_HUB_ADDR=$HUB_ADDR
export DOCKER_CONFIG=$DOCKER_CONFIG
ENV
step "up (. $LAB/env.sh)"
