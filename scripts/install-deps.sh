#!/usr/bin/env bash
# Installs the Debian 12 packages emm needs to build, test and run; skips what is present.
# --bench: also what `make bench` needs beyond that (gnuplot-nox for bench/plot.sh).
set -euo pipefail
pkgs=(build-essential cmake pkg-config fuse3 libfuse3-dev liblmdb-dev lmdb-utils libzstd-dev zstd
      libuv1-dev libinih-dev libcmocka-dev fio python3 util-linux e2fsprogs fdisk jq
      stress-ng scdoc mandoc libsystemd-dev systemd
      libmicrohttpd-dev curl tmux liburing-dev
      libgnutls28-dev                              # TLS 1.3 between emmd and emm-memserver
      iproute2                                     # t_memsrv_netns: ip netns, veth pairs
      ceph-mon ceph-osd ceph-common librados-dev)  # the rados plug-in and its throwaway test cluster
[ "${1:-}" != --bench ] || pkgs+=(gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
