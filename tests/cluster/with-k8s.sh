#!/usr/bin/env bash
# Run CMD against a Kubernetes lab of its own: wait for the machine's lab
# lock (one lab at a time: two runs queue), build the binaries if the cache
# lacks them, bring the lab up, export where it is, run CMD, and always tear
# it down (on exit, Ctrl-C or SIGTERM), then check that the host is as it
# was (k8s-baseline.sh).
#
# usage: tests/cluster/with-k8s.sh CMD...
#   e.g. tests/cluster/with-k8s.sh cargo test --test k8s_lab
#
# Exported to CMD (also written to $CCLAUNCH_K8S_LAB/env.sh):
#   CCLAUNCH_K8S_NETNS           the lab's network namespace (in-k8s.sh): the
#                                API server and every client run in it
#   CCLAUNCH_K8S_API             https://127.0.0.1:6443 (inside the namespace)
#   CCLAUNCH_K8S_KUBECONFIG      cluster admin (client certificate)
#   CCLAUNCH_K8S_SA_KUBECONFIG   service account cclaunch/cclaunch (token; k8s-rbac.yaml)
#   CCLAUNCH_K8S_NAMESPACE       cclaunch, the tests' namespace
#   CCLAUNCH_K8S_BIN             kube* binaries and kubectl of the lab's build
#   CCLAUNCH_K8S_CONTAINERD      the lab containerd's socket (k8s-images.sh)
#   CCLAUNCH_K8S_POD_GATEWAY     10.98.0.1: the pod bridge, reachable from pods
#                                on the pod network
#   CCLAUNCH_K8S_REGISTRY        127.0.0.1:5099, the lab registry: the host's
#                                Docker engine pushes there, the lab pulls
#   CCLAUNCH_K8S_LAB, CCLAUNCH_K8S_PREFIX   the lab directory, the name prefix
# CCLAUNCH_K8S_TMPFS=SIZE keeps the lab in memory (k8s-up.sh).
#
# When CMD or the lab fails, the daemons' logs are kept in $CCLAUNCH_K8S_LOGS
# (default target/k8s-logs/<time>), named on stderr. CMD runs in its own
# process group; on Ctrl-C or SIGTERM the group gets SIGTERM (SIGKILL after
# 10 s). Exit status: CMD's, else the lab's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
. "$HERE/k8s.sh"

REPO=$(cd "$HERE/../.." && pwd)
LOGS=${CCLAUNCH_K8S_LOGS:-${CARGO_TARGET_DIR:-$REPO/target}/k8s-logs/$PFX-$(date +%Y%m%dT%H%M%S)}
BASE=                            # the host baseline, made under the lock
child=
t_wait=- t_build=- t_up=- t_cmd=-
T0=$EPOCHREALTIME

say() { echo "with-k8s $PFX: $*" >&2; }
. "$HERE/wrapper.sh"             # elapsed, stop_child

up=
teardown() {
  local rc=$? t
  trap - EXIT INT TERM
  stop_child
  t=$EPOCHREALTIME
  if [ -n "$up" ]; then
    if [ $rc = 0 ]; then
      "$HERE/k8s-down.sh" || rc=$?
    else
      CCLAUNCH_K8S_KEEP_LOGS=$LOGS "$HERE/k8s-down.sh" || true
    fi
    "$HERE/k8s-baseline.sh" check "$BASE" || { [ $rc != 0 ] || rc=1; }
  fi
  [ -z "$BASE" ] || rm -rf "$BASE"
  say "lock wait ${t_wait}s, build ${t_build}s, lab up ${t_up}s, CMD ${t_cmd}s, lab down $(elapsed "$t")s"
  # (the logs are kept when CMD or the lab failed, not for a baseline check alone)
  [ $rc = 0 ] || [ -z "$up" ] || say "failed (exit $rc)$([ ! -d "$LOGS" ] || echo "; lab logs in $LOGS")"
  exit $rc
}
trap teardown EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# One lab per machine at a time. The lock is held by this shell's fd 7 and
# released when it exits; CMD and the daemons do not inherit it.
exec 7>"$LOCK"
if ! flock -n 7; then
  say "waiting for the lab lock $LOCK (another run holds it)"
  flock 7
fi
t_wait=$(elapsed "$T0")
# Holding the lock, a lab found now was left by a run that died (SIGKILL,
# reboot of its shell): remove it.
if [ -e "$NETNS_PATH" ] || [ -n "$(cgroup_dirs)" ] || [ -e "$MARKER" ]; then
  say "removing a lab left by an earlier run"
  "$HERE/k8s-down.sh" 7>&-
fi

T0=$EPOCHREALTIME
"$HERE/k8s-build.sh" 7>&- >/dev/null
t_build=$(elapsed "$T0")

T0=$EPOCHREALTIME
# A fixed name (one run holds the lock): a run killed with SIGKILL leaves
# nothing that the next one does not replace.
BASE=${TMPDIR:-/tmp}/cclaunch-k8s-baseline.$PFX
rm -rf "$BASE"
"$HERE/k8s-baseline.sh" save "$BASE"
up=1
CCLAUNCH_K8S_LOGS=$LOGS "$HERE/k8s-up.sh" 7>&-
. "$LAB/env.sh"
t_up=$(elapsed "$T0")
T0=$EPOCHREALTIME

# Its own process group: a signal to the group reaches cargo and the test
# binaries it runs, and (unlike a plain background job) CMD does not ignore
# SIGINT.
set -m
"$@" <&0 7>&- &
child=$!
set +m
rc=0
wait "$child" || rc=$?
child=
t_cmd=$(elapsed "$T0")
exit $rc
