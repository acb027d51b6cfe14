#!/usr/bin/env bash
# Builds Palisade's tiny test guest from Debian packages only:
#   OUTDIR/vmlinuz     the newest installed Debian kernel (linux-image-amd64, /boot/vmlinuz-*)
#   OUTDIR/initrd.img  gzip'd cpio (newc): busybox-static, the virtio net/blk, evdev and ACPI button modules of that
#                      same kernel (/lib/modules/<version>, decompressed), and ./init as /init.
# Usage: tests/guest/build.sh OUTDIR
# Idempotent and fast when up to date: a fingerprint of every input is kept in OUTDIR/.stamp; concurrent callers
# serialise on OUTDIR/.lock and the outputs are replaced atomically. Needs no root.
# The guest's kernel-command-line protocol (pal.connect=, pal.disk=, ...) is documented at the top of ./init and
# in README.md. Set PALISADE_GUEST_KVER to pick a kernel version other than the newest installed one.
set -euo pipefail

die() { echo "guest/build.sh: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 OUTDIR"
OUT=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# insmod order: dependencies first. Modules built into the kernel are skipped.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net
         virtio_blk evdev button)

BUSYBOX=/bin/busybox
# The applet list is read whole before it is searched: an early-exiting reader on a pipe (grep -q) kills busybox
# with SIGPIPE, which pipefail turns into a random failure on a busy machine.
applets=$("$BUSYBOX" --list 2>/dev/null || true)
if ! [ -x "$BUSYBOX" ] || ! grep -qx udhcpc <<<"$applets"; then
  die "$BUSYBOX missing or without udhcpc (apt-get install busybox-static)"
fi
file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is dynamically linked; install busybox-static"

# The running kernel may be another one than the installed linux-image package (containers, CI VMs): take the
# newest /boot/vmlinuz-* whose /lib/modules/<version> exists, and use that modules dir with it.
KVER=${PALISADE_GUEST_KVER:-}
if [ -z "$KVER" ]; then
  while read -r v; do
    if [ -r "/lib/modules/$v/modules.dep" ]; then KVER=$v; break; fi
  done < <(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -rV)
fi
[ -n "$KVER" ] || die "no /boot/vmlinuz-* with a matching /lib/modules/<version> (apt-get install linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER
[ -r "$KERNEL" ] || die "$KERNEL is not readable"
[ -r "$MODDIR/modules.dep" ] || die "$MODDIR/modules.dep missing"

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

fingerprint() {
  {
    echo "kver $KVER"
    stat -L -c '%n %s %Y' "$KERNEL" "$MODDIR/modules.dep" "$BUSYBOX"
    sha256sum "$HERE/build.sh" "$HERE/init" "$HERE/udhcpc.script" "$HERE/powerdown"
    echo "${MODULES[*]}"
  } | sha256sum | cut -d' ' -f1
}
FP=$(fingerprint)
if [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$FP" ]; then
  exit 0
fi

STAGE=$(mktemp -d "$OUT/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ROOT=$STAGE/root
mkdir -p "$ROOT"/{bin,sbin,etc/acpi/PWRF,lib/modules,proc,sys,dev,tmp,run}

install -m 0755 "$BUSYBOX" "$ROOT/bin/busybox"
install -m 0755 "$HERE/init" "$ROOT/init"
install -m 0755 "$HERE/udhcpc.script" "$ROOT/etc/udhcpc.script"
install -m 0755 "$HERE/powerdown" "$ROOT/etc/acpi/PWRF/00000080"

: >"$ROOT/lib/modules/order"
for m in "${MODULES[@]}"; do
  # modules.dep names files with "-" or "_" interchangeably and possibly compressed (.ko.xz, .ko.zst, .ko.gz).
  pat=${m//_/[-_]}
  rel=$(grep -m 1 -oE "^[^:]*/${pat}\.ko(\.xz|\.zst|\.gz)?:" "$MODDIR/modules.dep" | tr -d ':' || true)
  if [ -z "$rel" ]; then
    if grep -qE "/${pat}\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; then continue; fi
    die "module $m is neither in $MODDIR/modules.dep nor built in"
  fi
  src=$MODDIR/$rel
  dst=$ROOT/lib/modules/$m.ko
  case "$src" in
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) cp "$src" "$dst" ;;
  esac
  echo "$m" >>"$ROOT/lib/modules/order"
done

# Reproducible archive: fixed owner and mtimes, sorted names, no gzip timestamp.
find "$ROOT" -exec touch -h -d @0 {} +
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) \
  | gzip -n -9 >"$STAGE/initrd.img"
cp "$KERNEL" "$STAGE/vmlinuz"
chmod 0644 "$STAGE/vmlinuz" "$STAGE/initrd.img"
mv -f "$STAGE/vmlinuz" "$OUT/vmlinuz"
mv -f "$STAGE/initrd.img" "$OUT/initrd.img"
echo "$KVER" >"$OUT/kernel-version"
echo "$FP" >"$OUT/.stamp"
echo "guest/build.sh: built $OUT (kernel $KVER, initrd $(stat -c %s "$OUT/initrd.img") bytes)" >&2
