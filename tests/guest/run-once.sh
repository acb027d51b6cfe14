#!/usr/bin/env bash
# Boots the tiny test guest once under QEMU (TCG) and prints its PALISADE-* result lines. For checking the guest by
# hand and for its own verification; the acceptance tests start it through the helper instead.
# Usage: tests/guest/run-once.sh OUTDIR [--disk FILE.qcow2] [--snapshot] [--nonet] [--log FILE] [pal.KEY=VALUE ...]
#   OUTDIR     where build.sh puts (or has put) vmlinuz and initrd.img; built first if out of date
#   --disk     attach FILE (qcow2) as the virtio disk /dev/vda      --snapshot  QEMU -snapshot (writes are discarded)
#   --nonet    no NIC (and pal.net=0)                               --log       keep the whole serial log in FILE
#   pal.*      passed on the kernel command line (see init), e.g. pal.connect=10.0.2.2:8443 pal.disk=read,write
# Exit status: 0 when the guest printed PALISADE-DONE, 1 otherwise. The boot time goes to stderr.
# The whole run is bounded by `timeout 120`. Always TCG: /dev/kvm may exist where a nested guest hangs.
set -euo pipefail
die() { echo "guest/run-once.sh: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: $0 OUTDIR [--disk FILE] [--snapshot] [--nonet] [--log FILE] [pal.KEY=VALUE ...]"
OUT=$1; shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$HERE/build.sh" "$OUT"

qemu=(qemu-system-x86_64 -accel tcg -m 256 -nodefaults -no-user-config -display none
      -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img")
append="console=ttyS0 quiet"
net=1 log=
while [ $# -gt 0 ]; do
  case "$1" in
    --disk) [ $# -ge 2 ] || die "--disk needs a file"; qemu+=(-drive "file=$2,if=virtio,format=qcow2"); shift ;;
    --snapshot) qemu+=(-snapshot) ;;
    --nonet) net=0; append+=" pal.net=0" ;;
    --log) [ $# -ge 2 ] || die "--log needs a file"; log=$2; shift ;;
    pal.*=*) case "$1" in *[[:space:]]*) die "no spaces allowed in $1" ;; esac; append+=" $1" ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
# romfile= : no option ROM, so the ipxe ROM package is not needed (the kernel is loaded directly anyway).
[ "$net" = 0 ] || qemu+=(-netdev "user,id=n0" -device "virtio-net-pci,netdev=n0,romfile=")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
serial=$tmp/serial.log
qemu+=(-chardev "file,id=s0,path=$serial" -serial chardev:s0 -append "$append")

start=$(date +%s.%N)
rc=0
timeout 120 "${qemu[@]}" </dev/null >"$tmp/qemu.out" 2>&1 || rc=$?
end=$(date +%s.%N)
[ -z "$log" ] || cp "$serial" "$log"
tr -d '\r' <"$serial" | grep -ao 'PALISADE-.*' || true
echo "guest/run-once.sh: qemu exit $rc after $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s" >&2
[ "$rc" = 0 ] || sed 's/^/qemu: /' "$tmp/qemu.out" >&2
serial_text=$(tr -d '\r' <"$serial")
grep -aq 'PALISADE-DONE' <<<"$serial_text" || exit 1
