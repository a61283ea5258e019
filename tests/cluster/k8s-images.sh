#!/usr/bin/env bash
# Put images of the host's Docker engine into a Kubernetes lab's containerd
# (no registry: nothing can be pulled), where pods use them with
# imagePullPolicy Never (or IfNotPresent and a tag other than latest).
#
# usage: tests/cluster/k8s-images.sh IMAGE...
#   IMAGE: a name of testdata/images (busybox, nodeenv, ...) for
#   cclaunch-test/NAME:latest, or any reference the host engine has (a
#   chaincode image cclaunch built). The lab names it as the kubelet does:
#   cclaunch-test/busybox:latest is docker.io/cclaunch-test/busybox:latest.
# How: docker save | ctr images import (unpacked to overlayfs there). An
# image imported into this lab before, with the same id, costs nothing.
# Reads CCLAUNCH_K8S_PREFIX and CCLAUNCH_K8S_LAB (k8s.sh).
set -euo pipefail
. "$(dirname "$0")/k8s.sh"
TIMEOUT=${CCLAUNCH_K8S_IMAGE_TIMEOUT:-1800}   # the big images take minutes on a busy disk
[ $# -gt 0 ] || { echo "usage: $0 IMAGE... (a testdata/images name or a reference)" >&2; exit 2; }
[ -e "$MARKER" ] && [ -S "$LAB/containerd/containerd.sock" ] || { echo "k8s-images: no lab at $LAB (k8s-up.sh)" >&2; exit 1; }

# One import at a time per lab: they share its disk and containerd.
exec 8>"$LAB/images.lock"
flock 8

for image in "$@"; do
  case $image in
    "" | *[!a-zA-Z0-9._/:@-]*) echo "k8s-images: bad image '$image'" >&2; exit 2 ;;
    */* | *:* | *@*) ref=$image ;;
    *) ref=cclaunch-test/$image:latest ;;
  esac
  T0=$(now)
  id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null) \
    || { echo "k8s-images: $ref is not on the host engine" >&2; exit 1; }
  record="$LAB/images/imported"
  if grep -qxF "$ref $id" "$record" 2>/dev/null; then
    echo "k8s-images: $ref present" >&2
    continue
  fi
  timeout "$TIMEOUT" docker save "$ref" | timeout "$TIMEOUT" ctr --address "$LAB/containerd/containerd.sock" \
    --namespace k8s.io images import - >/dev/null \
    || { echo "k8s-images: $ref: docker save | ctr images import failed" >&2; exit 1; }
  echo "$ref $id" >> "$record"
  echo "k8s-images: $ref imported in $(since "$T0")s" >&2
done
