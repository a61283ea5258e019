#!/usr/bin/env bash
# The config of a lab registry (Debian's docker-registry, distribution 2.8),
# on stdout: plain HTTP on ADDR, blobs under DATA, deletes allowed, warnings
# only. Shared by the swarm and Kubernetes labs.
#
# usage: tests/cluster/registry-config.sh DATA ADDR > config.yml
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 DATA ADDR" >&2; exit 2; }
cat <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $1}
  delete: {enabled: true}
http: {addr: "$2"}
YML
