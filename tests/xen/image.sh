#!/bin/bash
# image.sh CACHE_DIR [--key] - build (once) what the nested-Xen test boots, in CACHE_DIR:
#   root.img     dom0's root file system (ext4, sparse): a Debian 12 made by
#                debootstrap with the Xen 4.17 hypervisor and toolstack, the
#                kernel, pvgrub2 (grub-xen-host) and the libraries poold,
#                pool-agent and xe link against. Files only: a debootstrap tree
#                under build/ would feed its etc/*.d to the Makefile's
#                `-include` of build/**/*.d
#   xen          the hypervisor (gunzipped: QEMU -kernel boots it as multiboot)
#   vmlinuz, initrd.img   dom0's kernel and Debian's initramfs (has virtio_blk)
#   key          what it was built from; a different key rebuilds (--key
#                prints the key of this script and its inputs, builds nothing)
# (The guest's disk is tests/xen/guest.sh's, built from the same kernel.)
# Needs root (debootstrap) and network access to a Debian mirror. Everything
# is bounded by timeout. Prints what it does, one line a step.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:?usage: image.sh CACHE_DIR}
mirror=${XEN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}
# dom0: Xen, its toolstack and kernel; the run-time libraries of our programs
pkgs=linux-image-amd64,xen-hypervisor-4.17-amd64,xen-utils-4.17,grub-xen-host,initramfs-tools,kmod,busybox
pkgs=$pkgs,procps,iproute2,util-linux,e2fsprogs,strace,libssl3,libevent-2.1-7,libevent-openssl-2.1-7
pkgs=$pkgs,libevent-pthreads-2.1-7,libcurl4,libjansson4,libsqlite3-0,libyaml-0-2,libzstd1
key=$( (echo "$pkgs"; cat "$here/image.sh") | sha256sum | cut -c1-16)
[ "${2:-}" = --key ] && { echo "$key"; exit 0; }

if [ -f "$cache/key" ] && [ "$(cat "$cache/key")" = "$key" ] && [ -f "$cache/root.img" ]; then
	echo "xen image: cached in $cache ($key)"
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "xen image: building the dom0 image needs root (debootstrap)"; exit 1; }
rm -rf "$cache"
mkdir -p "$cache"
t0=$(date +%s)
g=$(mktemp -d "${TMPDIR:-/var/tmp}/xen-image.XXXXXX")
trap 'rm -rf "$g"' EXIT
r=$g/rootfs
echo "xen image: debootstrap bookworm from $mirror"
if ! timeout 1200 debootstrap --variant=minbase --include="$pkgs" bookworm "$r" "$mirror" \
	>"$cache/debootstrap.log" 2>&1; then
	tail -20 "$cache/debootstrap.log"
	echo "xen image: debootstrap failed (log: $cache/debootstrap.log)"
	exit 1
fi
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
kver=$(ls "$r/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
zcat "$r/boot/xen-4.17-amd64.gz" >"$cache/xen"
cp "$r/boot/vmlinuz-$kver" "$cache/vmlinuz"
cp "$r/boot/initrd.img-$kver" "$cache/initrd.img"
[ -f "$r/usr/lib/grub-xen/grub-x86_64-xen.bin" ] || { echo "xen image: no pvgrub2 in grub-xen-host"; exit 1; }

echo "xen image: dom0's root file system"
mkdir -p "$r/opt/pool"
truncate -s 1600M "$cache/root.img"
timeout 600 mkfs.ext4 -q -F -L root -d "$r" "$cache/root.img"
echo "$key" >"$cache/key"
echo "xen image: built in $(($(date +%s) - t0)) s ($(du -sh "$r" | cut -f1) dom0 root)"
