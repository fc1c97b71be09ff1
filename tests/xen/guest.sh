#!/bin/bash
# guest.sh CACHE_DIR - the nested test's PV guest disk, CACHE_DIR/guest.img
# (rebuilt when tests/xen/guest-init or this script change; seconds): ext2
# with /boot/grub/grub.cfg for pvgrub2, dom0's kernel (CACHE_DIR/vmlinuz,
# from image.sh) and a busybox initramfs whose /init is guest-init: it
# loads xen-blkfront (taken from dom0's root.img: the same kernel), prints
# GUEST-UP, then a tick counter on the Xen console.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:?usage: guest.sh CACHE_DIR}
key=$(cat "$here/guest.sh" "$here/guest-init" "$cache/key" | sha256sum | cut -c1-16)
[ -f "$cache/guest.key" ] && [ "$(cat "$cache/guest.key")" = "$key" ] && [ -f "$cache/guest.img" ] && exit 0
g=$(mktemp -d "${TMPDIR:-/var/tmp}/xen-guest.XXXXXX")
trap 'rm -rf "$g"' EXIT
mkdir -p "$g/initrd/bin" "$g/initrd/sbin" "$g/initrd/dev" "$g/initrd/proc" "$g/initrd/sys" "$g/disk/boot/grub"
cp /bin/busybox "$g/initrd/bin/busybox"
case "$(ldd /bin/busybox 2>&1 || true)" in
*"not a dynamic"*) ;;
*) echo "xen guest: /bin/busybox is not static (install busybox-static)"; exit 1 ;;
esac
ln -s busybox "$g/initrd/bin/sh"
# what the guest kernel runs on a Xen shutdown request (control/shutdown)
for c in poweroff reboot; do
	printf '#!/bin/sh\nexec /bin/busybox %s -f\n' "$c" >"$g/initrd/sbin/$c"
	chmod 0755 "$g/initrd/sbin/$c"
done
cp "$cache/vmlinuz" "$g/disk/boot/vmlinuz"
kver=$(debugfs -R "ls /lib/modules" "$cache/root.img" 2>/dev/null | tr -s ' ' '\n' | grep -E '^[0-9]+\.' | sort -V | tail -1)
debugfs -R "dump /lib/modules/$kver/kernel/drivers/block/xen-blkfront.ko $g/initrd/xen-blkfront.ko" "$cache/root.img" \
	>/dev/null 2>&1
[ -s "$g/initrd/xen-blkfront.ko" ] || { echo "xen guest: no xen-blkfront.ko for $kver in $cache/root.img"; exit 1; }
install -m 0755 "$here/guest-init" "$g/initrd/init"
(cd "$g/initrd" && find . | cpio -o -H newc --quiet | gzip -9) >"$g/disk/boot/initrd.gz"
cat >"$g/disk/boot/grub/grub.cfg" <<CFG
set timeout=0
menuentry "tick guest" {
	linux /boot/vmlinuz console=hvc0 quiet loglevel=3 rdinit=/init
	initrd /boot/initrd.gz
}
CFG
truncate -s 64M "$g/guest.img"
mkfs.ext2 -q -F -L tickguest -d "$g/disk" "$g/guest.img"
mv "$g/guest.img" "$cache/guest.img"
echo "$key" >"$cache/guest.key"
echo "xen guest: built $cache/guest.img"
