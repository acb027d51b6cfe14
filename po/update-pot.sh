#!/usr/bin/env bash
# Regenerates po/palisade.pot from the files listed in po/POTFILES, then merges it into each
# catalogue listed in po/LINGUAS (new strings arrive untranslated, changed ones fuzzy).
#
# gettext 0.21 has no Rust parser; its C parser reads Rust string literals correctly, so Rust
# files are scanned as C with the app's translation functions as keywords (see app/src/i18n.rs).
# Two Rust constructs confuse a C lexer and are removed from a scratch copy first: lifetimes
# after `&`, `<`, `, ` or `+ ` (`&'static` reads as an unterminated character constant) and
# `#[cfg(test)]` modules at the end of a file (raw strings in tests). Lines are kept, so the
# copy scans like the original.
# The desktop file, the AppStream metainfo and the polkit actions are read with gettext's own
# rules for those formats (polkit's ITS rules come with the polkitd package).
#
# Usage: po/update-pot.sh [OUTPUT.pot]   (default po/palisade.pot; with another output, the
#                                          catalogues are left alone: po/check.sh uses that)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
pot=$top/po/palisade.pot
out=$(realpath -m "${1:-$pot}")
cd "$top"

version=$(sed -n 's/^version = "\(.*\)"/\1/p;T;q' Cargo.toml)
rust=()
other=()
while read -r f; do
    case $f in
        '' | '#'*) ;;
        *.rs) rust+=("$f") ;;
        *) other+=("$f") ;;
    esac
done < po/POTFILES

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for f in "${rust[@]}"; do
    mkdir -p "$scratch/$(dirname "$f")"
    sed -e "s/\([&<]\|[,+] \)'\([A-Za-z_][A-Za-z0-9_]*\)\([^A-Za-z0-9_']\|\$\)/\1\2\3/g" \
        -e '/^#\[cfg(test)\]/,$s/.*//' "$f" > "$scratch/$f"
done
# The desktop file and the metainfo carry merged translations (po/merge-data.sh); only their
# English originals are extracted.
for f in "${other[@]}"; do
    mkdir -p "$scratch/$(dirname "$f")"
    sed -e '/^[A-Za-z0-9-]*\[[^]]*\]=/d' -e '/ xml:lang="[^"]*"/d' "$f" > "$scratch/$f"
done

common=(--from-code=UTF-8 --add-comments=Translators: --add-location=file --sort-by-file
        --package-name=palisade "--package-version=$version" --msgid-bugs-address=
        --copyright-holder="The Palisade developers")
# xgettext insists on a bug-report address; there is none to give, so its warning is dropped.
quiet() { "$@" 2> >(grep -v -e 'msgid-bugs-address' -e 'Makevars' -e 'MSGID_BUGS_ADDRESS' >&2); }
quiet xgettext "${common[@]}" --language=C --keyword= --keyword=gettext --keyword=ngettext:1,2 \
    --keyword=i18n_f --keyword=ni18n_f:1,2 --directory="$scratch" --output="$out" "${rust[@]}"
quiet xgettext "${common[@]}" --join-existing --directory="$scratch" --output="$out" "${other[@]}"

if [[ $out == "$pot" ]]; then
    while read -r lang; do
        case $lang in '' | '#'*) continue ;; esac
        if [[ -f po/$lang.po ]]; then
            msgmerge --quiet --update --backup=none --previous "po/$lang.po" "$pot"
        else
            msginit --no-translator --locale="$lang.UTF-8" --input="$pot" --output-file="po/$lang.po"
        fi
    done < po/LINGUAS
fi
