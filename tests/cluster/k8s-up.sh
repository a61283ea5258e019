#!/usr/bin/env bash
# Bring a Kubernetes lab up (k8s.sh describes its shape): the network
# namespace, cgroups, PKI, the mount-namespace holder, containerd with the
# pause image, etcd, the API server, controller-manager, scheduler, kubelet;
# then the node Ready, the cclaunch namespace and service account with its
# kubeconfig. On success writes $LAB/env.sh; on failure tears down what it
# made (keeping the logs in $CCLAUNCH_K8S_LOGS, default $LAB-logs).
#
# usage: [CCLAUNCH_K8S_PREFIX=cck8s] [CCLAUNCH_K8S_LAB=/tmp/cck8s] [CCLAUNCH_K8S_TMPFS=SIZE] \
#        tests/cluster/k8s-up.sh
#   CCLAUNCH_K8S_TMPFS: keep the lab (image layers included) in a tmpfs of
#   SIZE (e.g. 4g) mounted on $LAB: for tests that import the big images.
# Needs root, cgroup v1, the binaries of k8s-build.sh and the packages of
# k8s-deps.sh. Not safe to run twice at once: with-k8s.sh takes the lock.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/k8s.sh"

T0=$(now)
step() { printf 'k8s-up %s: %6.2fs %s\n' "$PFX" "$(since "$T0")" "$*" >&2; }
fail() { echo "k8s-up $PFX: $*" >&2; exit 1; }

# --- preflight: nothing is made before these pass ------------------------------------------------
[ "$(id -u)" = 0 ] || fail "needs root (namespaces, cgroups, mounts)"
for c in ip nsenter unshare setsid openssl etcd containerd containerd-shim-runc-v2 runc ctr docker-registry socat curl; do
  command -v "$c" >/dev/null || fail "'$c' not found (tests/cluster/k8s-deps.sh installs it)"
done
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || fail "CNI plugins not in /usr/lib/cni (k8s-deps.sh)"
[ -e "$(dirname "$BIN")/complete" ] || fail "no Kubernetes binaries in $BIN (tests/cluster/k8s-build.sh)"
[ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/cpuset ] \
  || fail "needs cgroup v1 (kubelet 1.20 with the cgroupfs driver); /sys/fs/cgroup is $(stat -f -c %T /sys/fs/cgroup)"
longest="$LAB/containerd/containerd.sock.ttrpc"
[ ${#longest} -lt 100 ] || fail "CCLAUNCH_K8S_LAB '$LAB' is too long for unix socket paths ($longest)"
[ ! -e "$NETNS_PATH" ] || fail "netns $NETNS exists: a lab is running or was left (tests/cluster/k8s-down.sh)"
[ -z "$(cgroup_dirs)" ] || fail "cgroup /$PFX exists: a lab is running or was left (k8s-down.sh)"
[ ! -e "$LAB" ] || [ -z "$(ls -A "$LAB")" ] || fail "$LAB is not empty (k8s-down.sh)"
! (exec 3<>"/dev/tcp/${REGISTRY%:*}/${REGISTRY#*:}") 2>/dev/null \
  || fail "$REGISTRY (the lab registry's address on the host) is taken: set CCLAUNCH_K8S_REGISTRY_PORT"

on_exit() {
  local rc=$?
  [ $rc = 0 ] && return
  echo "k8s-up $PFX: failed (rc $rc); tearing down" >&2
  CCLAUNCH_K8S_KEEP_LOGS=${CCLAUNCH_K8S_LOGS:-$LAB-logs} "$HERE/k8s-down.sh" >&2 || true
}
trap on_exit EXIT

mkdir -p "$LAB"
if [ -n "${CCLAUNCH_K8S_TMPFS:-}" ]; then
  mount -t tmpfs -o "size=$CCLAUNCH_K8S_TMPFS,mode=0755" "cclaunch-k8s-$PFX" "$LAB"
fi
touch "$MARKER"
mkdir -p "$LAB"/{logs,images,containerd,etcd,kubelet,cni/net.d,cni/ipam,registry/data}
: > "$LAB/pids"

# --- the network namespace: loopback only ---------------------------------------------------------
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
[ -z "$(ip -n "$NETNS" route show default)" ] || fail "netns $NETNS has a default route"
[ "$(ip -n "$NETNS" -o link | grep -vc ': lo:')" = 0 ] || fail "netns $NETNS has links besides lo"

# --- cgroups: /$PFX (every v1 hierarchy), the daemons in /$PFX/daemons, pods in /$PFX/kubepods ----
for h in /sys/fs/cgroup/*/; do
  [ -e "${h}cgroup.procs" ] || continue
  mkdir "$h$PFX" "$h$PFX/daemons"
  if [ -e "${h}cpuset.cpus" ]; then     # a new cpuset is empty: nothing could join it
    for d in "$h$PFX" "$h$PFX/daemons"; do
      cat "${h}cpuset.cpus" > "$d/cpuset.cpus"
      cat "${h}cpuset.mems" > "$d/cpuset.mems"
    done
  fi
done
step "netns $NETNS, cgroups /$PFX"

"$HERE/k8s-pki.sh"
step "PKI and kubeconfigs"

# --- the mount namespace of the daemons -----------------------------------------------------------
# Host paths the kubelet and containerd hard-code, bound to lab directories
# in a mount namespace of their own (a slave of the host's: host mounts
# still reach it, its mounts never reach the host). A mount point missing on
# the host is made here and removed by k8s-down.sh (made-dirs).
binds="log:/var/log lib-kubelet:/var/lib/kubelet lib-cni:/var/lib/cni run-containerd:/run/containerd run-netns:/run/netns"
: > "$LAB/made-dirs"
for b in $binds; do
  mkdir -p "$LAB/host/${b%%:*}"
  [ -d "${b#*:}" ] || { mkdir -p "${b#*:}"; echo "${b#*:}" >> "$LAB/made-dirs"; }
done
mkdir -p "$LAB/host/run-containerd/s"

(
  join_cgroup
  exec setsid nsenter --net="$NETNS_PATH" -- unshare --mount --propagation slave -- /bin/sh -c '
    set -e
    for b in $2; do mount --bind "$1/host/${b%%:*}" "${b#*:}"; done
    touch "$1/holder.ready"
    exec sleep infinity' sh "$LAB" "$binds"
) </dev/null >>"$LAB/logs/holder.log" 2>&1 &
echo $! > "$LAB/holder.pid"
wait_until 10 "mount namespace holder ready (log: $LAB/logs/holder.log)" test -e "$LAB/holder.ready"


# --- configuration files (every path under $LAB) -------------------------------------------------
cat > "$LAB/containerd/config.toml" <<EOF
version = 2
root = "$LAB/containerd/root"
state = "$LAB/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.opt"]
[grpc]
  address = "$LAB/containerd/containerd.sock"
[ttrpc]
  address = "$LAB/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LAB/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$LAB/containerd/registries"
EOF
# The one registry the lab's containerd knows: the lab registry, plain HTTP.
mkdir -p "$LAB/containerd/registries/$REGISTRY"
cat > "$LAB/containerd/registries/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
"$HERE/registry-config.sh" "$LAB/registry/data" "$REGISTRY" > "$LAB/registry/config.yml"
# Pods on the pod network: a bridge inside the lab's namespace, its address
# the pods' gateway; no masquerade, and the namespace has no route out.
cat > "$LAB/cni/net.d/10-$PFX.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "$PFX",
 "plugins": [{"type": "bridge", "bridge": "$PFX-br0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_NET.0/24", "gateway": "$POD_NET.1"}]],
            "dataDir": "$LAB/cni/ipam"}}]}
EOF
# Pods get no name server (nothing to reach); the host's resolv.conf stays out.
printf '# cclaunch k8s lab: no DNS\noptions ndots:0\n' > "$LAB/resolv.conf"
cat > "$LAB/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $LAB/pki/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $LAB/pki/kubelet-serving.crt
tlsPrivateKeyFile: $LAB/pki/kubelet-serving.key
cgroupDriver: cgroupfs
cgroupRoot: /$PFX
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
clusterDomain: cluster.local
resolvConf: $LAB/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
runtimeRequestTimeout: 2m
EOF

# --- the pause image: $BIN/pause as a docker archive -----------------------------------------------
mkimage() {
  local name=$1 out=$2 bin=$3 d layer diff config cid
  d=$(mktemp -d "$LAB/images/mk.XXXXXX")
  mkdir "$d/rootfs"
  cp "$bin" "$d/rootfs/${bin##*/}"
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$d/rootfs" -cf "$d/layer.tar" "${bin##*/}"
  diff=$(sha256sum < "$d/layer.tar" | cut -c1-64)
  config="{\"architecture\":\"$(dpkg --print-architecture)\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/${bin##*/}\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff\"]}}"
  cid=$(printf %s "$config" | sha256sum | cut -c1-64)
  mkdir "$d/img" "$d/img/$diff"
  mv "$d/layer.tar" "$d/img/$diff/layer.tar"
  printf %s "$config" > "$d/img/$cid.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cid" "$name" "$diff" > "$d/img/manifest.json"
  tar -C "$d/img" -cf "$out" .
  rm -rf "$d"
}
mkimage "$PAUSE_IMAGE" "$LAB/images/pause.tar" "$BIN/pause"

# --- etcd and containerd --------------------------------------------------------------------------
start containerd containerd --config "$LAB/containerd/config.toml"
start etcd etcd --name "$PFX" --data-dir "$LAB/etcd/data" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster "$PFX=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381
# The registry in the lab; its bridge: the lab's end takes connections on a
# unix socket (which crosses network namespaces) to the registry, the host's
# end takes the same address on the host's loopback to that socket. The
# host's end is in the lab's cgroup (k8s-down.sh ends it), not its netns.
start registry docker-registry serve "$LAB/registry/config.yml"
start registry-bridge socat "UNIX-LISTEN:$LAB/registry/bridge.sock,fork,mode=600" "TCP:$REGISTRY"
(
  join_cgroup
  exec setsid socat "TCP-LISTEN:${REGISTRY#*:},bind=${REGISTRY%:*},fork,reuseaddr" "UNIX-CONNECT:$LAB/registry/bridge.sock"
) </dev/null >>"$LAB/logs/registry-bridge-host.log" 2>&1 &
echo $! > "$LAB/registry/bridge.pid"
wait_until 30 "containerd answering (log: $LAB/logs/containerd.log)" lab_ctr version
lab_ctr images import "$LAB/images/pause.tar" >/dev/null
registry_up() { curl -fsS --max-time 2 "http://$REGISTRY/v2/" && in_ns curl -fsS --max-time 2 "http://$REGISTRY/v2/"; }
wait_until 30 "registry $REGISTRY answering on the host and in the lab (logs: $LAB/logs/registry*.log)" registry_up
step "containerd, etcd and the registry started, pause image imported"

# --- control plane --------------------------------------------------------------------------------
P=$LAB/pki
start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 --insecure-port=0 \
  --service-cluster-ip-range="$SERVICE_NET.0/24" --endpoint-reconciler-type=none \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
  --kubelet-client-certificate="$P/apiserver-kubelet.crt" --kubelet-client-key="$P/apiserver-kubelet.key" \
  --kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
  --cert-dir="$LAB/apiserver-certs"
wait_until 90 "API server ready (log: $LAB/logs/kube-apiserver.log)" kc get --raw /readyz
step "API server ready"
start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$LAB/kc/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$LAB/kc/controller-manager.kubeconfig" --authorization-kubeconfig="$LAB/kc/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10257 --port=0 --leader-elect=false --use-service-account-credentials=true \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" --cert-dir="$LAB/kcm-certs"
start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$LAB/kc/scheduler.kubeconfig" \
  --authentication-kubeconfig="$LAB/kc/scheduler.kubeconfig" --authorization-kubeconfig="$LAB/kc/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --port=0 --leader-elect=false --cert-dir="$LAB/scheduler-certs"
# --docker points cAdvisor away from the host's Docker socket (a unix socket
# would reach it across the network namespace).
start kubelet "$BIN/kubelet" --config="$LAB/kubelet.yaml" --kubeconfig="$LAB/kc/kubelet.kubeconfig" \
  --container-runtime=remote --container-runtime-endpoint="unix://$LAB/containerd/containerd.sock" \
  --containerd="$LAB/containerd/containerd.sock" --docker=unix:///nonexistent/cclaunch-k8s-lab.sock \
  --hostname-override="$NODE" --root-dir="$LAB/kubelet" --cert-dir="$LAB/kubelet-certs" \
  --pod-infra-container-image="$PAUSE_IMAGE" --v=1
node_ready() {
  [ "$(kc get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_until 120 "node $NODE Ready (log: $LAB/logs/kubelet.log)" node_ready
step "node Ready"

# --- the tests' namespace, the least-privilege service account and its kubeconfig ------------------
kc apply -f "$HERE/k8s-rbac.yaml" >/dev/null
token_secret() { kc -n "$NAMESPACE" get serviceaccount "$1" -o 'jsonpath={.secrets[0].name}' | grep .; }
# Pods are admitted only once their namespace's default account has a token.
wait_until 60 "service account $NAMESPACE/default has a token" token_secret default
wait_until 60 "service account $NAMESPACE/cclaunch has a token" token_secret cclaunch
token=$(kc -n "$NAMESPACE" get secret "$(token_secret cclaunch)" -o 'jsonpath={.data.token}' | base64 -d)
(
  umask 077
  cat > "$LAB/cclaunch.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $PFX
  cluster:
    server: $API
    certificate-authority-data: $(base64 -w0 "$P/ca.crt")
users:
- name: cclaunch
  user:
    token: $token
contexts:
- name: $PFX
  context: {cluster: $PFX, user: cclaunch, namespace: $NAMESPACE}
current-context: $PFX
EOF
)
step "namespace $NAMESPACE, service account cclaunch"

# --- every process of the lab is in its network namespace ------------------------------------------
want=$(stat -L -c %i "$NETNS_PATH")
bridge=$(cat "$LAB/registry/bridge.pid")
for p in $(lab_pids); do
  [ "$p" != "$bridge" ] || continue
  got=$(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null) || continue
  [ "$got" = "$want" ] || fail "pid $p ($(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-60)) is outside netns $NETNS"
done

cat > "$LAB/env.sh" <<EOF
export CCLAUNCH_K8S_PREFIX=$PFX
export CCLAUNCH_K8S_LAB=$LAB
export CCLAUNCH_K8S_NETNS=$NETNS
export CCLAUNCH_K8S_API=$API
export CCLAUNCH_K8S_KUBECONFIG=$LAB/admin.kubeconfig
export CCLAUNCH_K8S_SA_KUBECONFIG=$LAB/cclaunch.kubeconfig
export CCLAUNCH_K8S_NAMESPACE=$NAMESPACE
export CCLAUNCH_K8S_BIN=$BIN
export CCLAUNCH_K8S_CONTAINERD=$LAB/containerd/containerd.sock
export CCLAUNCH_K8S_POD_GATEWAY=$POD_NET.1
export CCLAUNCH_K8S_REGISTRY=$REGISTRY
EOF
step "up: $(lab_pids | wc -l) processes in netns $NETNS (. $LAB/env.sh)"
