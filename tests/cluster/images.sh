#!/usr/bin/env bash
# Put the project's local test images on a lab's manager, where chaincode
# builds run (the host engine cannot reach the lab registry: the host's
# network namespace has no route into the lab).
#
# usage: tests/cluster/images.sh NAME...     e.g. busybox ccenv
#   Each cclaunch-test/NAME:latest of the host engine (testdata/images/
#   make-images.sh) ends up on the manager under the same name and image id.
#   An image the manager already has with that id costs nothing.
#
# Cache (CCLAUNCH_SWARM_CACHE, default /var/cache/cclaunch-swarm; empty = off):
#   registry blobs of the images pushed before, keyed by the host's image id.
#   hit:  the blobs are linked into the lab registry and the manager pulls
#         $REG/cclaunch-test/NAME@<digest>. Cheaper than save|load, and the
#         manager then knows which registry blobs its layers are: pushing an
#         image built on top of NAME mounts them instead of uploading them.
#   miss: docker save | docker load from the host engine, then (cache on) a
#         push to the lab registry whose blobs are kept for the next runs:
#         the push compresses every layer, paid once per image version.
# A changed image (make-images.sh --force) has a new id, so a new entry; old
# entries are not collected: rm -rf the cache directory to reclaim space.
# Reads the lab's CCLAUNCH_SWARM_PREFIX and CCLAUNCH_SWARM_LAB (lab.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lab.sh"
CACHE=${CCLAUNCH_SWARM_CACHE-/var/cache/cclaunch-swarm}
V2=docker/registry/v2            # layout of distribution's filesystem storage

# Transfers of the big images take minutes on a loaded machine; bounded all the same.
DK_TIMEOUT=${CCLAUNCH_SWARM_IMAGE_TIMEOUT:-1800}
trap 'echo "images: ${name:-}: failed (rc $?) at images.sh line $LINENO" >&2' ERR

[ $# -gt 0 ] || { echo "usage: $0 NAME... (cclaunch-test/NAME:latest)" >&2; exit 2; }
[ -e "$MARKER" ] && [ -S "$LAB/mgr/docker.sock" ] || { echo "images: no lab at $LAB (swarm-up.sh)" >&2; exit 1; }

# One transfer at a time per lab: they share the manager's disk and CPU.
exec 8>"$LAB/images.lock"
flock 8

# link_tree SRC DST: DST gets SRC's files that it lacks, as hard links when
# both are on one filesystem (the registry never rewrites a blob's data
# file), as copies otherwise.
link_tree() {
  mkdir -p "$2"
  if [ "$(stat -c %d "$1")" = "$(stat -c %d "$2")" ]; then cp -al -n "$1/." "$2/"
  else cp -a -n "$1/." "$2/"; fi
}

for name in "$@"; do
  case $name in *[!a-z0-9_-]* | "") echo "images: bad name '$name'" >&2; exit 2 ;; esac
  image=cclaunch-test/$name:latest
  T0=$(now)
  id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) \
    || { echo "images: $image is not on the host engine (testdata/images/make-images.sh $name)" >&2; exit 1; }
  if [ "$(dk mgr image inspect -f '{{.Id}}' "$image" 2>/dev/null)" = "$id" ]; then
    echo "images: $image present on the manager" >&2
    continue
  fi
  key=${id#sha256:}
  repo=cclaunch-test/$name
  entry=${CACHE:+$CACHE/index/$key}
  if [ -n "$entry" ] && [ -s "$entry" ]; then
    digest=$(cat "$entry")
    # Metadata files are copied (the registry rewrites link files in place);
    # blob data is linked.
    {
      flock -s 9
      link_tree "$CACHE/reg/$V2/blobs" "$LAB/reg/data/$V2/blobs"
      mkdir -p "$LAB/reg/data/$V2/repositories/$repo"
      cp -a -n "$CACHE/reg/$V2/repositories/$repo/." "$LAB/reg/data/$V2/repositories/$repo/"
    } 9>"$CACHE/lock"
    dk mgr pull -q "$REG/$repo@$digest" >/dev/null
    dk mgr tag "$REG/$repo@$digest" "$image"
    how="pulled from the cache"
  else
    docker save "$image" | dk mgr load -q >/dev/null
    how="loaded (docker save | load)"
    if [ -n "$entry" ]; then
      T1=$(now)
      dk mgr tag "$image" "$REG/$repo:${key:0:12}"
      dk mgr push -q "$REG/$repo:${key:0:12}" >/dev/null
      digest=$(dk mgr image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$image" \
        | sed -n "s|^$REG/$repo@||p" | head -1)
      [ -n "$digest" ] || { echo "images: no digest for $REG/$repo after the push" >&2; exit 1; }
      mkdir -p "$CACHE/index"
      {
        flock 9
        link_tree "$LAB/reg/data/$V2/blobs" "$CACHE/reg/$V2/blobs"
        mkdir -p "$CACHE/reg/$V2/repositories/$repo"
        cp -a -n "$LAB/reg/data/$V2/repositories/$repo/." "$CACHE/reg/$V2/repositories/$repo/"
        echo "$digest" > "$entry.tmp" && mv "$entry.tmp" "$entry"
      } 9>"$CACHE/lock"
      how="$how, pushed to the cache in $(since "$T1")s"
    fi
  fi
  got=$(dk mgr image inspect -f '{{.Id}}' "$image")
  [ "$got" = "$id" ] || { echo "images: $image on the manager is $got, not $id" >&2; exit 1; }
  echo "images: $image $how in $(since "$T0")s" >&2
done
