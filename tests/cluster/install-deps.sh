#!/usr/bin/env bash
# Install what the swarm lab needs on Debian, when missing: iproute2 (ip),
# util-linux (nsenter, unshare, setsid, flock), docker-registry. docker.io
# itself comes from scripts/ensure-docker.sh. Idempotent; needs root to
# install.
#
# docker-registry's postinst would start a registry on :5000 of the host: a
# policy-rc.d that denies starting services is in place during the install
# (one already there is kept), and the service is disabled afterwards, so it
# does not start at boot either. The lab runs the binary itself, in its hub
# namespace.
set -euo pipefail

need=()
command -v ip >/dev/null || need+=(iproute2)
for c in nsenter unshare setsid flock; do
  command -v "$c" >/dev/null || { need+=(util-linux); break; }
done
command -v docker-registry >/dev/null || need+=(docker-registry)
[ ${#need[@]} -gt 0 ] || exit 0

echo "install-deps: installing ${need[*]}" >&2
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# cclaunch tests/cluster/install-deps.sh: no service starts during the install\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || rm -f "$policy"; }
trap cleanup EXIT

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

case " ${need[*]} " in
  *" docker-registry "*)
    if command -v deb-systemd-helper >/dev/null; then deb-systemd-helper disable docker-registry.service >/dev/null 2>&1 || true; fi
    if command -v update-rc.d >/dev/null; then update-rc.d docker-registry disable >/dev/null 2>&1 || true; fi
    ;;
esac
