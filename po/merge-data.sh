#!/usr/bin/env bash
# Writes the translations from po/*.po into the desktop file and the AppStream metainfo, in place,
# so that the files in data/ are exactly what is installed (desktop environments and software
# centres read translations from these files, not from gettext catalogues). The polkit actions
# need no merging: polkitd looks their messages up in the "palisade" text domain at run time.
#
# Run it after changing a catalogue or the English text of either file; po/check.sh fails while
# they are out of date. Idempotent: earlier translations are removed before merging.
#
# Usage: po/merge-data.sh [OUTPUT-DIR]   (default: data/, in place; po/check.sh passes a scratch
#                                          folder and compares)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/data}")
cd "$top"
mkdir -p "$out"

desktop=data/io.palisade.Palisade.desktop
metainfo=data/io.palisade.Palisade.metainfo.xml
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The English originals: drop every localized key (Name[de]=...) and element (xml:lang="de"),
# which msgfmt writes one per line.
sed -e '/^[A-Za-z0-9-]*\[[^]]*\]=/d' "$desktop" > "$scratch/in.desktop"
sed -e '/ xml:lang="[^"]*"/d' "$metainfo" > "$scratch/in.metainfo.xml"

msgfmt --desktop --template="$scratch/in.desktop" -d po -o "$scratch/out.desktop"
msgfmt --xml --template="$scratch/in.metainfo.xml" -d po -o "$scratch/out.metainfo.xml"

cp "$scratch/out.desktop" "$out/$(basename "$desktop")"
cp "$scratch/out.metainfo.xml" "$out/$(basename "$metainfo")"
