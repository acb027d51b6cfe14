#!/usr/bin/env bash
# Installs what building and testing Palisade needs on Debian 12. Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(nftables qemu-system-x86 qemu-utils libgtk-4-dev libadwaita-1-dev virt-viewer xvfb dbus polkitd pkexec
      conntrack iproute2 busybox-static linux-image-amd64 cpio desktop-file-utils appstream libxml2-utils gettext
      pkg-config util-linux passwd procps psmisc python3 at-spi2-core
      python3-gi gir1.2-atspi-2.0 imagemagick python3-dbus openssl python3-cryptography time
      libnss-extrausers python3-dnspython stunnel4 microsocks tcpdump ansible-core
      x11-xserver-utils
      # ansible.posix's json callback, which the fleet tests and bench read ansible-playbook's
      # results from (ansible-core alone has no JSON callback since 2.11).
      ansible
      # xorriso, isolinux, syslinux-common: the installer ISO the app's machines test builds from
      # the tiny guest; xdotool: real key events for the keyboard-only app test, and focusing GTK's
      # file chooser under Xvfb (no window manager) to open its location entry; optipng: smaller
      # `make screenshots` PNGs.
      xorriso isolinux syslinux-common xdotool optipng)

# Prints "URI<TAB>SIGNED-BY" of the machine's own main Debian source for suite $1 (deb822 files first, then
# one-line sources.list entries), so the backports entry uses the machine's mirror, proxy and keyring settings.
debian_source_for() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # A stanza ends at a blank line; keep the first URI of a "deb" stanza that lists the suite itself.
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uri != "") { print uri "\t" signed; found = 1; exit }
        types = ""; suites = ""; uri = ""; signed = ""
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "types:"     { $1 = ""; types = substr($0, 2) }
      tolower($1) == "suites:"    { $1 = ""; suites = substr($0, 2) }
      tolower($1) == "uris:"      { uri = $2 }
      tolower($1) == "signed-by:" { signed = $2 }
      END { if (!found) flush() }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    # "deb [options] URI suite components..."; options in brackets are skipped.
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i "\t"; exit }
      }
    ' "$f"
  done
}

# The machine image may carry qemu-utils from bookworm-backports; qemu-system-x86 must then come from there too
# or apt refuses the mix.
qemu_utils_version=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
if [[ $qemu_utils_version == *bpo* ]]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  source_line=$(debian_source_for "$codename")
  source_line=${source_line%%$'\n'*}
  if [ -z "$source_line" ]; then
    echo "deps: qemu-utils comes from $codename-backports, but no Debian source for '$codename' is configured in" \
         "/etc/apt/sources.list or /etc/apt/sources.list.d/; add the machine's Debian mirror there and run again." >&2
    exit 1
  fi
  uri=${source_line%%$'\t'*}
  signed=${source_line#*$'\t'}
  {
    echo "# Written by Palisade's tests/scripts/deps.sh from the machine's own $codename source."
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: $codename-backports"
    echo "Components: main"
    [ -z "$signed" ] || echo "Signed-By: $signed"
  } > /etc/apt/sources.list.d/palisade-backports.sources
  rm -f /etc/apt/sources.list.d/palisade-backports.list
  BPO=(-t "$codename-backports")
  # QEMU 10 ships Spice (and the QXL card) as a separate module package.
  PKGS+=(qemu-system-modules-spice)
else
  BPO=()
fi
missing=()
for p in "${PKGS[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
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
