#!/usr/bin/env bash
# Installs what building and testing Palisade needs on Debian 12. Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(nftables qemu-system-x86 qemu-utils libgtk-4-dev libadwaita-1-dev virt-viewer xvfb dbus polkitd pkexec
      conntrack iproute2 busybox-static linux-image-amd64 cpio desktop-file-utils appstream libxml2-utils gettext
      pkg-config util-linux passwd procps psmisc python3 at-spi2-core
      python3-gi gir1.2-atspi-2.0 imagemagick python3-dbus openssl python3-cryptography)
# The machine image may carry qemu-utils from bookworm-backports; qemu-system-x86 must then come from there too
# or apt refuses the mix.
if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/palisade-backports.list
  BPO=(-t bookworm-backports)
  # QEMU 10 ships Spice (and the QXL card) as a separate module package.
  PKGS+=(qemu-system-modules-spice)
else
  BPO=()
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
apt-get update -qq
rest=()
for p in "${missing[@]}"; do
  case "$p" in qemu-system-x86|qemu-system-modules-spice|qemu-utils) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${BPO[@]}" "$p" ;;
  *) rest+=("$p") ;; esac
done
[ ${#rest[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${rest[@]}"
