#!/usr/bin/env bash
# Install what the Kubernetes lab runs on Debian, when missing: etcd-server,
# containerd and runc, containernetworking-plugins (bridge, host-local),
# iproute2, util-linux (nsenter, unshare, setsid, flock), openssl, the lab
# registry (docker-registry) and its bridge to the host (socat). The
# Kubernetes binaries themselves are built by k8s-build.sh (its own build
# dependencies: Go, dpkg-dev, gcc). Idempotent; needs root to install.
#
# etcd-server's, containerd's and docker-registry's postinst would start
# services on the host: a policy-rc.d that denies starting services is in
# place during the install (one already there is kept), and a newly
# installed etcd or registry is disabled, so it does not start at boot
# either. The lab runs the binaries itself, in its own namespace.
set -euo pipefail

need=()
command -v ip >/dev/null || need+=(iproute2)
for c in nsenter unshare setsid flock; do
  command -v "$c" >/dev/null || { need+=(util-linux); break; }
done
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v etcd >/dev/null || need+=(etcd-server)
command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || need+=(containernetworking-plugins)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v socat >/dev/null || need+=(socat)
[ ${#need[@]} -gt 0 ] || exit 0

echo "k8s-deps: installing ${need[*]}" >&2
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# cclaunch tests/cluster/k8s-deps.sh: no service starts during the install\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || rm -f "$policy"; }
trap cleanup EXIT

apt-get update -qq
DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# A newly installed service stays off at boot too.
disable() {
  if command -v deb-systemd-helper >/dev/null; then deb-systemd-helper disable "$1.service" >/dev/null 2>&1 || true; fi
  if command -v update-rc.d >/dev/null; then update-rc.d "$1" disable >/dev/null 2>&1 || true; fi
}
case " ${need[*]} " in *" etcd-server "*) disable etcd ;; esac
case " ${need[*]} " in *" docker-registry "*) disable docker-registry ;; esac
