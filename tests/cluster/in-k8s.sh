#!/usr/bin/env bash
# Run CMD in a Kubernetes lab's network namespace, where the API server
# (127.0.0.1:6443) is: kubectl, the cclaunch binary, or a server that
# hostNetwork pods dial on 127.0.0.1. Only the network namespace changes:
# CMD sees the host's files, users and unix sockets.
#
# The host's network namespace has no route into the lab. Talk to such a
# server through a unix socket (they work across network namespaces) or from
# a thread that entered the namespace (tests/common/k8s.rs: Cluster::block_on).
#
# usage: tests/cluster/in-k8s.sh CMD...   (reads CCLAUNCH_K8S_PREFIX, see k8s.sh)
#   e.g. tests/cluster/in-k8s.sh "$CCLAUNCH_K8S_BIN/kubectl" --kubeconfig "$CCLAUNCH_K8S_KUBECONFIG" get pods -A
set -euo pipefail
. "$(dirname "$0")/k8s.sh"
[ $# -gt 0 ] || { echo "usage: $0 CMD..." >&2; exit 2; }
[ -e "$NETNS_PATH" ] || { echo "in-k8s: no lab (netns $NETNS): tests/cluster/with-k8s.sh" >&2; exit 1; }
# nsenter, not `ip netns exec`: the latter remounts /sys.
exec nsenter --net="$NETNS_PATH" -- "$@"
