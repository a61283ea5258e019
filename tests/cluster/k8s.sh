# Shared definitions of the Kubernetes lab scripts (sourced, not run).
#
# A lab is a real single-node Kubernetes 1.20.2 (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, a containerd of its own
# with CRI, the bridge CNI plugin), every process of it in one network
# namespace that has nothing but loopback and the pod bridge:
#
#   netns $PFX : lo 127.0.0.1   apiserver :6443, etcd :2379, kubelet :10250 ...
#                $PFX-br0 10.98.0.1/24 (pods on the pod network, when there are)
#
# No default route: nothing in the lab can send a packet outside it, and the
# host's network namespace cannot reach it either. Clients run in the
# namespace (in-k8s.sh, or tests/common/k8s.rs: Cluster::block_on).
#
# The daemons also share one private mount namespace (held by holder.pid):
# their mounts (overlay roots, secret tmpfs, pod netns) never reach the
# host's table and vanish with them. Host paths the kubelet and containerd
# hard-code are bound to lab directories there:
#   /var/log                  <- $LAB/host/log   (/var/log/pods, /var/log/containers)
#   /var/lib/kubelet          <- $LAB/host/lib-kubelet (device-plugins socket)
#   /var/lib/cni              <- $LAB/host/lib-cni (the CNI result cache)
#   /run/containerd           <- $LAB/host/run-containerd (shim sockets in s/)
#   /run/netns                <- $LAB/host/run-netns (pod network namespaces)
# Their processes live in the cgroup /$PFX (every v1 hierarchy): daemons in
# /$PFX/daemons, pods in /$PFX/kubepods (the kubelet's cgroupRoot).
#
# Files, all under $LAB (short: unix socket paths are limited to 108 bytes):
#   .cclaunch-k8s-lab    marker: k8s-down.sh removes only a marked dir
#   env.sh               what with-k8s.sh exports
#   holder.pid, pids     the mount-namespace holder; "name pid" of each daemon
#   pki/                 CA, serving and client certificates, service-account key
#   admin.kubeconfig     cluster admin (system:masters)
#   cclaunch.kubeconfig  the service account cclaunch/cclaunch (a Role on its namespace)
#   registry/            the lab registry's config, data, and the bridge's socket;
#                        bridge.pid: the host end of the bridge, the one process
#                        of the lab outside its network namespace (in its cgroup)
#   kc/                  the components' kubeconfigs
#   containerd/ etcd/ kubelet/ cni/ host/   daemon state
#   logs/                one log per daemon
#
# Binaries come from k8s-build.sh's cache ($CACHE/<recipe hash>/bin), built
# from Debian's kubernetes source package; etcd, containerd, runc and the CNI
# plugins are Debian's (k8s-deps.sh).

PFX=${CCLAUNCH_K8S_PREFIX:-cck8s}
LAB=${CCLAUNCH_K8S_LAB:-/tmp/$PFX}
CACHE=${CCLAUNCH_K8S_CACHE:-/var/cache/cclaunch-k8s}
# One lab per machine at a time (CPU, memory): with-k8s.sh queues on this.
LOCK=${CCLAUNCH_K8S_LOCK:-/run/lock/cclaunch-k8s.lock}
MARKER=$LAB/.cclaunch-k8s-lab
NETNS=$PFX
NETNS_PATH=/run/netns/$NETNS
POD_NET=10.98.0
SERVICE_NET=10.97.0
API=https://127.0.0.1:6443
NODE=127.0.0.1                   # node name; the kubelet takes it as its address
NAMESPACE=cclaunch               # the tests' namespace, and the service account's
# The lab registry (Debian's docker-registry) on the lab's loopback, and the
# same address on the host's loopback: a bridge through a unix socket, so the
# host's Docker engine pushes what it builds and the lab's containerd pulls it
# by the one name. Traffic goes host -> lab only: the lab has no way out.
REGISTRY=127.0.0.1:${CCLAUNCH_K8S_REGISTRY_PORT:-5099}
K8S_VERSION=v1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
# Debian's pause-like sandbox image does not exist: the lab makes one from the
# source tree's build/pause/linux/pause.c (k8s-build.sh) under this name.
PAUSE_IMAGE=cclaunch.local/pause:3.2

K8S_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case $PFX in
  *[!a-z0-9]* | "" | [0-9]*) echo "CCLAUNCH_K8S_PREFIX '$PFX': use a lower-case letter then letters/digits" >&2; exit 2 ;;
esac
[ ${#PFX} -le 10 ] || { echo "CCLAUNCH_K8S_PREFIX '$PFX': 10 characters at most" >&2; exit 2; }
case $LAB in
  /*) ;;
  *) echo "CCLAUNCH_K8S_LAB '$LAB': must be an absolute path" >&2; exit 2 ;;
esac

# The cache key: the build recipe (k8s-build.sh without its comments) and the
# patches. A changed recipe builds into a new directory; old ones are not
# collected (rm -rf the cache to reclaim them).
recipe_key() {
  { grep -v '^[[:space:]]*#' "$K8S_HERE/k8s-build.sh"; cat "$K8S_HERE"/k8s-patches/*.patch; } | sha256sum | cut -c1-12
}
BIN=${CCLAUNCH_K8S_BIN:-$CACHE/$K8S_VERSION-$(recipe_key)/bin}

# in_ns CMD...: CMD in the lab's network namespace only (host files, host
# mounts). nsenter, not `ip netns exec`, which remounts /sys.
in_ns() { nsenter --net="$NETNS_PATH" -- "$@"; }
# in_lab CMD...: CMD in the lab's network and mount namespaces (the daemons' view).
in_lab() { nsenter --net="$NETNS_PATH" --mount="/proc/$(cat "$LAB/holder.pid")/ns/mnt" --wd="$LAB" -- "$@"; }

# kc ARGS...: kubectl as the lab's admin, in the namespace, bounded in time.
kc() { timeout "${KC_TIMEOUT:-60}" nsenter --net="$NETNS_PATH" -- "$BIN/kubectl" --kubeconfig "$LAB/admin.kubeconfig" "$@"; }
# lab_ctr ARGS...: ctr against the lab's containerd (Kubernetes' k8s.io namespace).
lab_ctr() { ctr --address "$LAB/containerd/containerd.sock" --namespace k8s.io "$@"; }

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# wait_until SECONDS WHAT CMD...: polls CMD every 0.1 s until it succeeds;
# fails naming WHAT after SECONDS.
wait_until() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then echo "k8s lab $PFX: $what: not within ${limit}s" >&2; return 1; fi
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

# The lab's cgroups: /$PFX in every v1 hierarchy (or the unified one).
cgroup_dirs() {
  local d
  for d in /sys/fs/cgroup/*/"$PFX" /sys/fs/cgroup/"$PFX"; do [ -d "$d" ] && echo "$d"; done
}
# lab_pids: every process in the lab's cgroups (daemons, shims, containers).
lab_pids() {
  local d
  for d in $(cgroup_dirs); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -un
}
# join_cgroup: the calling (sub)shell joins /$PFX/daemons in every hierarchy.
join_cgroup() {
  local d
  for d in $(cgroup_dirs); do echo "$BASHPID" > "$d/daemons/cgroup.procs"; done
}
# start NAME CMD...: a daemon in the lab's cgroup, network and mount
# namespaces (once holder.pid runs), in a session of its own (a Ctrl-C at
# the terminal does not reach it); its PID (nsenter and setsid exec) goes to
# $LAB/pids.
start() {
  local name=$1; shift
  (
    join_cgroup
    exec setsid nsenter --net="$NETNS_PATH" --mount="/proc/$(cat "$LAB/holder.pid")/ns/mnt" --wd="$LAB" -- "$@"
  ) </dev/null >>"$LAB/logs/$name.log" 2>&1 &
  echo "$name $!" >> "$LAB/pids"
}
