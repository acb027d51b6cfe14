#!/usr/bin/env bash
# Checks the translations: po/palisade.pot matches the sources, every catalogue in po/LINGUAS is
# complete (nothing untranslated or fuzzy), compiles with `msgfmt --check`, keeps every `{name}`
# placeholder of the English text, and the desktop file and metainfo carry the current
# translations (po/merge-data.sh). Prints one line per check (ok / FAIL); exits 1 if any failed.
# POTFILES itself is checked by tests/scripts/validate-data.sh.
#
# Usage: po/check.sh     (needs gettext and python3)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failures=0
ok() { printf 'ok    %s\n' "$1"; }
fail() {
    printf 'FAIL  %s\n' "$1"
    if [[ -n ${2:-} ]]; then printf '%s\n' "$2" | sed 's/^/      /'; fi
    failures=$((failures + 1))
}

# The template, regenerated and compared without its creation date and the source locations.
normalize() { msgcat --no-location --no-wrap --sort-output "$1" | grep -v '^"POT-Creation-Date:'; }
if ! out=$(po/update-pot.sh "$scratch/palisade.pot" 2>&1); then
    fail "pot: po/update-pot.sh failed" "$out"
elif out=$(diff <(normalize po/palisade.pot) <(normalize "$scratch/palisade.pot")); then
    ok "pot: po/palisade.pot matches the sources ($(grep -c '^msgid ' po/palisade.pot) messages with the header)"
else
    fail "pot: po/palisade.pot is out of date; run po/update-pot.sh and translate what is new" "$out"
fi

langs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' po/LINGUAS)
for lang in $langs; do
    po=po/$lang.po
    if [[ ! -f $po ]]; then
        fail "$lang: $po is missing"
        continue
    fi
    if ! out=$(msgfmt --check --output-file=/dev/null "$po" 2>&1); then
        fail "$lang: msgfmt --check refuses $po" "$out"
        continue
    fi
    # Every message of the template is there and translated, none fuzzy.
    if ! out=$(msgcmp "$po" po/palisade.pot 2>&1); then
        fail "$lang: $po lacks messages of the template; run po/update-pot.sh" "$out"
        continue
    fi
    untranslated=$(msgattrib --untranslated --no-obsolete "$po" | grep -c '^msgid ' || true)
    fuzzy=$(msgattrib --only-fuzzy --no-obsolete "$po" | grep -c '^msgid ' || true)
    # msgattrib prints the header entry with any other entry; alone it is no finding.
    if [[ $untranslated -gt 1 || $fuzzy -gt 1 ]]; then
        fail "$lang: $po has $((untranslated > 0 ? untranslated - 1 : 0)) untranslated and $((fuzzy > 0 ? fuzzy - 1 : 0)) fuzzy messages"
        continue
    fi
    if ! out=$(msgcat --no-wrap "$po" | python3 -c '
import re, sys
# Walks the catalogue and compares the {placeholders} of each msgid with those of its msgstr(s).
def text(line):
    m = re.match(r"^[a-z_\[\]0-9]+\s+\"(.*)\"$", line) or re.match(r"^\"(.*)\"$", line)
    return m.group(1) if m else ""
names = lambda s: sorted(set(re.findall(r"\{[a-z_]+\}", s)))
entries, cur, key = [], {}, None
for line in sys.stdin.read().splitlines() + [""]:
    if not line.strip():
        if cur: entries.append(cur)
        cur, key = {}, None
        continue
    if line.startswith("#"):
        continue
    m = re.match(r"^(msgid_plural|msgid|msgstr(?:\[\d+\])?)\s", line)
    if m:
        key = m.group(1)
        cur[key] = ""
    if key:
        cur[key] += text(line)
bad = []
for e in entries:
    mid = e.get("msgid", "")
    if not mid:
        continue
    want = names(mid)
    for k, v in e.items():
        if k.startswith("msgstr") and v and names(v) != want:
            bad.append(f"{mid!r}: {k} has {names(v)}, the English has {want}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
' 2>&1); then
        fail "$lang: placeholders differ between English and translation in $po" "$out"
        continue
    fi
    ok "$lang: $po is complete, compiles, and keeps every placeholder"
done

if ! out=$(po/merge-data.sh "$scratch/data" 2>&1); then
    fail "data: po/merge-data.sh failed" "$out"
else
    for f in io.palisade.Palisade.desktop io.palisade.Palisade.metainfo.xml; do
        if out=$(diff "data/$f" "$scratch/data/$f"); then
            ok "data: data/$f carries the current translations"
        else
            fail "data: data/$f is out of date; run po/merge-data.sh" "$out"
        fi
    done
fi

if [[ $failures -gt 0 ]]; then
    echo "po/check: $failures check(s) failed"
    exit 1
fi
echo "po/check: translations are complete and current"
