#!/usr/bin/env bash
# Record the host's state before a lab, and after its teardown say whether it
# is back exactly: iptables and ip6tables rules, network links and
# namespaces, mounts, top-level cgroups, the host paths a kubelet uses, and
# the kernel settings a stock kubelet rewrites.
#
# usage: tests/cluster/k8s-baseline.sh save DIR | check DIR
#
# Other work shares this machine (Docker containers and swarm labs come and
# go during a run), so a difference fails the check only when it can be the
# lab's: it names the lab (prefix, directory, address ranges) or anything
# Kubernetes makes (kubepods, kube*, cni, /var/lib/kubelet, /var/log/pods),
# or it is one of the kernel settings. Other differences are shown as such.
set -uo pipefail
. "$(dirname "$0")/k8s.sh"
op=${1:-}; dir=${2:-}
[ -n "$dir" ] || { echo "usage: $0 save|check DIR" >&2; exit 2; }

tables() { command -v "$1" >/dev/null && "$1" 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]$//'; }
declare -A what=(
  [iptables]="tables iptables-save"
  [ip6tables]="tables ip6tables-save"
  [links]="ip -o link | awk '{ print \$2 }' | sort"
  [netns]="ip netns list | awk '{ print \$1 }' | sort"
  [mounts]="awk '{ print \$5, \$9 }' /proc/self/mountinfo | sort"
  [cgroups]="ls -d /sys/fs/cgroup/*/*/ 2>/dev/null"
  [paths]="ls -d /var/log/pods /var/log/containers /var/lib/kubelet /var/lib/cni /etc/cni /opt/cni /run/containerd 2>/dev/null"
  [sysctl]="sysctl vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes 2>&1"
)
lab_re="$PFX|$LAB|kubepods|kube|cni|${POD_NET//./\\.}\\.|${SERVICE_NET//./\\.}\\.|/var/lib/kubelet|/var/log/pods|/var/log/containers"

case $op in
  save)
    mkdir -p "$dir"
    for k in "${!what[@]}"; do eval "${what[$k]}" > "$dir/$k.txt" || true; done
    ;;
  check)
    rc=0 other=
    for k in $(printf '%s\n' "${!what[@]}" | sort); do
      d=$(diff "$dir/$k.txt" <(eval "${what[$k]}") | grep '^[<>]')
      [ -n "$d" ] || continue
      if [ "$k" = sysctl ] || grep -Eq "$lab_re" <<< "$d"; then
        echo "k8s-baseline: $k differs from before the lab:" >&2
        sed 's/^/  /' <<< "$d" >&2
        rc=1
      else
        other+=" $k"
      fi
    done
    [ -z "$other" ] || echo "k8s-baseline: changed meanwhile by other work (nothing of the lab's):$other" >&2
    [ $rc = 0 ] && echo "k8s-baseline: host as before the lab (iptables, links, netns, mounts, cgroups, paths, sysctl)" >&2
    exit $rc
    ;;
  *) echo "usage: $0 save|check DIR" >&2; exit 2 ;;
esac
