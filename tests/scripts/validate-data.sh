#!/usr/bin/env bash
# Validates every data file Palisade installs: polkit actions and rules, the D-Bus policy and
# activation file, the systemd units, the tmpfiles entry, the desktop file and metainfo, and
# po/POTFILES. Prints one line per check (ok / skip / FAIL) and exits non-zero if any check failed.
#
# Usage: tests/scripts/validate-data.sh        (from anywhere; needs root for the D-Bus checks)
#
# Tools (Debian): libxml2-utils, dbus, systemd, desktop-file-utils, appstream, util-linux.
# A missing tool skips its check with a note, except xmllint and dbus-daemon, which are required.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top" || exit 2
work=$(mktemp -d /tmp/palisade-validate.XXXXXX)
bus_pid=
cleanup() {
  if [ -n "$bus_pid" ]; then kill "$bus_pid" 2>/dev/null; wait "$bus_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
ok()   { printf 'ok    %s\n' "$1"; }
skip() { printf 'skip  %s\n' "$1"; }
fail() {
  printf 'FAIL  %s\n' "$1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      /'; fi
  failures=$((failures + 1))
}
have() { command -v "$1" >/dev/null 2>&1; }

actions_file=polkit/io.palisade.policy
rules_file=polkit/50-io.palisade.rules
dbus_conf=data/dbus/io.palisade.Helper1.conf
dbus_service=data/dbus/io.palisade.Helper1.service
units=(data/systemd/palisade-helper.service data/systemd/palisade-apply.service)
tmpfiles=data/tmpfiles.d/palisade.conf

# The names of the contract, read from the code, so that the data files cannot drift from it.
contract_ids=$(grep -o '"io\.palisade\.[a-z]*\.[a-z]*"' dbus/src/names.rs | tr -d '"' | sort -u)
bus_name=$(sed -n 's/^pub const BUS_NAME: &str = "\(.*\)";/\1/p' dbus/src/names.rs)
admin_group=$(sed -n 's/^pub const ADMIN_GROUP: &str = "\(.*\)";/\1/p' dbus/src/names.rs)

# --- scripts -----------------------------------------------------------------------------------
# Under `set -o pipefail`, a reader that exits early (grep -q, grep -m, head, sed ...q) kills the
# writer of its pipe with SIGPIPE and fails the pipeline at random on a busy machine. Read the
# output whole (a variable, a here-string) instead. And the repository names no package mirror:
# package sources come from the machine's own configuration.
check_scripts() {
  local files hits mirror pat
  files=$(git ls-files -- '*.sh' '*.rs' '*.py' Makefile 'mk/*' .ci/run 2>/dev/null)
  # The pattern is built from pieces so that this line does not match itself.
  pat='[|]'"[[:space:]]*(grep[[:space:]]+(-[A-Za-z]*[qm]|--quiet|--max-count)|head([[:space:]]|$)|sed[[:space:]][^|]*[;'{]q)"
  # shellcheck disable=SC2086
  hits=$(grep -nE "$pat" $files 2>/dev/null | grep -v '^tests/scripts/validate-data.sh:' || true)
  if [ -z "$hits" ]; then
    ok "scripts: no early-exiting reader on a pipe"
  else
    fail "scripts: an early-exiting reader on a pipe can fail the pipeline at random" "$hits"
  fi
  mirror=$(git grep -nIE '(deb|ftp|security|archive|mirrors?)\.(debian|ubuntu)\.(org|net|com)|https?://[a-z0-9.-]*mirror' -- . \
             ':!tests/scripts/validate-data.sh' 2>/dev/null || true)
  if [ -z "$mirror" ]; then
    ok "scripts: no package mirror host named in the repository"
  else
    fail "scripts: a package mirror host is named; use the machine's configured sources" "$mirror"
  fi
}

# --- the helper's layers (ARCHITECTURE.md) ------------------------------------------------------
# bus/ only translates: it authorizes, parses arguments, calls one service method and maps the
# result, so it never compiles rulesets, touches files, runs programs or edits policy documents.
# The firewall and the VMs do not know each other, except that the supervisor tells the
# firewall its console ports through firewall::facts::ConsolePorts. The nfnetlink crate below
# the firewall is a leaf.
check_layers() {
  local hits
  hits=$(grep -nE 'compile|render::|facts::|std::fs|fs::|File::|Command|process::|toml::|chown|OpenOptions' \
           helper/src/bus.rs helper/src/bus/*.rs 2>/dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
  if [ -z "$hits" ]; then
    ok "layers: helper/src/bus only translates (no compiler, files, processes or policy edits)"
  else
    fail "layers: helper/src/bus does more than translate; move it into the service that owns it" "$hits"
  fi
  hits=$(grep -nE '(crate|super)::vm\b' helper/src/firewall.rs $(find helper/src/firewall -name '*.rs') 2>/dev/null || true)
  if [ -z "$hits" ]; then
    ok "layers: the firewall does not import vm"
  else
    fail "layers: the firewall imports vm; take what it needs as a fact" "$hits"
  fi
  # The nfnetlink encoder is a leaf: it speaks netlink for whoever names a table and a set, and
  # knows no Palisade crate (so neither policies nor VMs can leak into it).
  hits=$(grep -nE 'palisade[-_](dbus|helper|tests|app)' nfnetlink/Cargo.toml $(find nfnetlink/src -name '*.rs') 2>/dev/null || true)
  if [ -z "$hits" ]; then
    ok "layers: nfnetlink depends on no other Palisade crate"
  else
    fail "layers: nfnetlink uses another Palisade crate; pass what it needs as arguments" "$hits"
  fi
  hits=$(grep -nE 'crate::firewall' helper/src/vm.rs $(find helper/src/vm -name '*.rs') 2>/dev/null |
           grep -vE 'crate::firewall::facts::ConsolePorts;' || true)
  if [ -z "$hits" ]; then
    ok "layers: vm meets the firewall only through firewall::facts::ConsolePorts"
  else
    fail "layers: vm imports the firewall beyond its facts interface" "$hits"
  fi
}

# --- polkit actions ----------------------------------------------------------------------------
check_polkit_actions() {
  if ! have xmllint; then fail "polkit actions: xmllint not installed (apt install libxml2-utils)"; return; fi
  local dtd=/usr/share/polkit-1/policyconfig-1.dtd out
  if [ -f "$dtd" ]; then
    if out=$(xmllint --noout --dtdvalid "$dtd" "$actions_file" 2>&1); then
      ok "polkit actions: $actions_file is valid against $dtd"
    else
      fail "polkit actions: $actions_file is not valid against $dtd" "$out"
    fi
  elif out=$(xmllint --noout "$actions_file" 2>&1); then
    skip "polkit actions: no $dtd (install polkitd) — only well-formedness checked"
  else
    fail "polkit actions: $actions_file is not well-formed XML" "$out"
  fi

  local file_ids
  file_ids=$(xmllint --xpath '//action/@id' "$actions_file" 2>/dev/null | grep -o 'io\.palisade\.[a-z.]*' | sort -u)
  if [ -n "$contract_ids" ] && [ "$file_ids" = "$contract_ids" ]; then
    ok "polkit actions: the ids match palisade_dbus::names::Action ($(echo $file_ids | wc -w) actions)"
  else
    fail "polkit actions: the ids differ from dbus/src/names.rs" \
      "$(diff <(echo "$contract_ids") <(echo "$file_ids"))"
  fi

  local texts domains
  texts=$(xmllint --xpath 'count(//action/message | //action/description)' "$actions_file" 2>/dev/null)
  domains=$(xmllint --xpath 'count(//action/message[@gettext-domain="palisade"] | //action/description[@gettext-domain="palisade"])' "$actions_file" 2>/dev/null)
  if [ -n "$texts" ] && [ "$texts" = "$domains" ] && [ "$texts" != 0 ]; then
    ok "polkit actions: every message and description is translated through gettext domain palisade"
  else
    fail "polkit actions: $domains of $texts messages/descriptions carry gettext-domain=\"palisade\""
  fi
}

# --- polkit rules ------------------------------------------------------------------------------
# polkitd only reads rules from fixed system folders, so the real-polkitd test lives in the
# end-to-end harness. Here the rules file runs against a stand-in `polkit` object under Node.js.
check_polkit_rules() {
  if ! have node; then skip "polkit rules: node not installed; $rules_file is exercised by the end-to-end tests"; return; fi
  local out
  if out=$(node - "$rules_file" "$admin_group" $contract_ids <<'EOF' 2>&1
const fs = require("fs");
const [file, group, ...ids] = process.argv.slice(2);
const rules = [];
const polkit = {
  Result: { YES: "yes", NO: "no", AUTH_ADMIN: "auth_admin", AUTH_ADMIN_KEEP: "auth_admin_keep",
            AUTH_SELF: "auth_self", AUTH_SELF_KEEP: "auth_self_keep", NOT_HANDLED: null },
  addRule: (f) => rules.push(f),
  addAdminRule: () => {},
  log: () => {},
  spawn: () => { throw new Error("rules must not spawn programs"); },
};
new Function("polkit", fs.readFileSync(file, "utf8"))(polkit);
const subject = (groups) => ({ user: "u", groups, local: true, active: true,
                               isInGroup: (g) => groups.includes(g), isInNetGroup: () => false });
const decide = (id, s) => {
  for (const r of rules) { const v = r({ id, lookup: () => undefined }, s); if (v) return v; }
  return null;
};
const bad = [];
for (const id of ids) {
  if (decide(id, subject([group])) !== "yes") bad.push(`${group} member not granted ${id}`);
  if (decide(id, subject(["users"])) !== null) bad.push(`non-member decided for ${id}`);
}
if (decide("org.freedesktop.login1.reboot", subject([group])) !== null) bad.push("decides a foreign action");
if (rules.length === 0) bad.push("no rule added");
if (bad.length) { console.log(bad.join("\n")); process.exit(1); }
EOF
  ); then
    ok "polkit rules: group $admin_group gets YES for every io.palisade action, nothing else is decided"
  else
    fail "polkit rules: $rules_file does not behave as intended" "$out"
  fi
}

# --- D-Bus -------------------------------------------------------------------------------------
# Starts a private bus with the system bus's default policy (as in /usr/share/dbus-1/system.conf)
# plus our file, then asks it things: root may own the name, nobody may not, nobody may call it.
check_dbus() {
  if ! have dbus-daemon || ! have dbus-send; then fail "D-Bus: dbus-daemon/dbus-send not installed (apt install dbus)"; return; fi
  if ! grep -q "<allow own=\"$bus_name\"/>" "$dbus_conf"; then
    fail "D-Bus: $dbus_conf does not let root own $bus_name"
  fi
  if grep -q "^Name=$bus_name\$" "$dbus_service" && grep -q '^SystemdService=palisade-helper.service$' "$dbus_service" \
     && grep -q "^BusName=$bus_name\$" data/systemd/palisade-helper.service; then
    ok "D-Bus: activation file, unit and contract agree on $bus_name"
  else
    fail "D-Bus: $dbus_service, palisade-helper.service and dbus/src/names.rs disagree about the bus name"
  fi

  mkdir -p "$work/bus" "$work/services"
  chmod 755 "$work" "$work/bus"
  # The activation file as shipped, except that activation runs /bin/false: a real helper must
  # never start on this test bus.
  sed 's|^Exec=.*|Exec=/bin/false|' "$dbus_service" > "$work/services/io.palisade.Helper1.service"
  cat > "$work/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$work/bus/socket</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$work/services</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>$top/$dbus_conf</include>
</busconfig>
EOF
  local out addr
  dbus-daemon --config-file="$work/bus.conf" --nofork --print-address=3 3>"$work/address" 2>"$work/bus.log" &
  bus_pid=$!
  for _ in $(seq 50); do
    [ -s "$work/address" ] && break
    kill -0 "$bus_pid" 2>/dev/null || break
    sleep 0.1
  done
  addr=$(head -n1 "$work/address" 2>/dev/null)
  # A config error (in our file too: <include> is fatal) makes dbus-daemon exit. Its complaint
  # about the fd limit, printed when root cannot raise it in a container, is not one.
  if [ -z "$addr" ] || ! kill -0 "$bus_pid" 2>/dev/null; then
    fail "D-Bus: dbus-daemon does not start with $dbus_conf" "$(cat "$work/bus.log")"
    return
  fi
  ok "D-Bus: dbus-daemon --nofork starts with $dbus_conf and parses the activation file"

  local as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  local request=(--print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.RequestName "string:$bus_name" uint32:0)
  if out=$(dbus-send --bus="$addr" "${request[@]}" 2>&1) && grep -q 'uint32 1' <<<"$out"; then
    ok "D-Bus: root may own $bus_name"
  else
    fail "D-Bus: root may not own $bus_name" "$out"
  fi
  if ! have setpriv; then skip "D-Bus: setpriv missing; policy for other users not exercised"; return; fi
  out=$("${as_nobody[@]}" dbus-send --bus="$addr" "${request[@]}" 2>&1)
  if grep -q 'AccessDenied' <<<"$out"; then
    ok "D-Bus: another user may not own $bus_name"
  else
    fail "D-Bus: another user was not refused ownership of $bus_name" "$out"
  fi
  out=$("${as_nobody[@]}" dbus-send --bus="$addr" --print-reply --dest=org.freedesktop.DBus / \
        org.freedesktop.DBus.ListActivatableNames 2>&1)
  if grep -q "\"$bus_name\"" <<<"$out"; then
    ok "D-Bus: $bus_name is activatable"
  else
    fail "D-Bus: $bus_name is not among the activatable names" "$out"
  fi
  # Nobody owns the name now (root's dbus-send has gone), so a call activates: with /bin/false the
  # bus answers with a Spawn error. AccessDenied would mean the policy refused the call itself.
  out=$("${as_nobody[@]}" dbus-send --bus="$addr" --print-reply --dest="$bus_name" /io/palisade/Helper1 \
        org.freedesktop.DBus.Peer.Ping 2>&1)
  if grep -q 'org.freedesktop.DBus.Error.Spawn' <<<"$out"; then
    ok "D-Bus: any user may call $bus_name (polkit decides in the helper)"
  else
    fail "D-Bus: a call to $bus_name from another user was not let through to activation" "$out"
  fi
  kill "$bus_pid" 2>/dev/null
  wait "$bus_pid" 2>/dev/null
  bus_pid=
}

# --- systemd -----------------------------------------------------------------------------------
# systemd-analyze verify checks that ExecStart= exists and that referenced units exist, so it
# runs against a scratch root holding the system's units and a stand-in helper binary. It exits 0
# even on unknown keys and bad values, so any output at all is a failure. If it cannot verify a
# trivial unit, it cannot run here, and the check is skipped.
check_systemd() {
  if ! have systemd-analyze; then skip "systemd: systemd-analyze not installed"; return; fi
  local root="$work/root" out u
  mkdir -p "$root/usr/libexec" "$root/usr/lib/systemd" "$root/etc/systemd/system"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/" 2>/dev/null
  printf '#!/bin/sh\n' > "$root/usr/libexec/palisade-helper"
  chmod 755 "$root/usr/libexec/palisade-helper"
  printf '[Unit]\nDescription=probe\n[Service]\nType=oneshot\nExecStart=/usr/libexec/palisade-helper\n' \
    > "$root/etc/systemd/system/palisade-probe.service"
  if ! out=$(systemd-analyze verify --root="$root" /etc/systemd/system/palisade-probe.service 2>&1) || [ -n "$out" ]; then
    skip "systemd: systemd-analyze verify cannot run here ($(head -n1 <<<"$out"))"
    return
  fi
  for u in "${units[@]}"; do
    cp "$u" "$root/etc/systemd/system/"
    if out=$(systemd-analyze verify --root="$root" "/etc/systemd/system/$(basename "$u")" 2>&1) && [ -z "$out" ]; then
      ok "systemd: $u verifies cleanly"
    else
      fail "systemd: systemd-analyze verify complains about $u" "$out"
    fi
  done
}

# systemd-analyze security scores the helper's sandbox (0 safe … 10 exposed); the README reports
# the score. A change that loosens the sandbox past it fails here.
readonly helper_exposure_max=31   # tenths: 3.1, "OK"
check_systemd_security() {
  if ! have systemd-analyze; then skip "systemd: systemd-analyze not installed"; return; fi
  local unit="$top/data/systemd/palisade-helper.service" out score
  out=$(systemd-analyze security --offline=true --threshold="$helper_exposure_max" "$unit" 2>&1)
  local rc=$?
  score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  if [ -z "$score" ]; then
    skip "systemd: systemd-analyze security --offline cannot run here ($(head -n1 <<<"$out"))"
  elif [ "$rc" -eq 0 ]; then
    ok "systemd: the helper's exposure is $score (at most 3.1)"
  else
    fail "systemd: the helper's exposure is $score, above 3.1" "$(grep '✗' <<<"$out")"
  fi
}

check_tmpfiles() {
  if ! have systemd-tmpfiles; then skip "tmpfiles: systemd-tmpfiles not installed"; return; fi
  local root="$work/tmpfiles" out got want
  mkdir -p "$root"
  if ! out=$(systemd-tmpfiles --root="$root" --create "$top/$tmpfiles" 2>&1) || [ -n "$out" ]; then
    fail "tmpfiles: systemd-tmpfiles refuses $tmpfiles" "$out"
    return
  fi
  got=$(cd "$root" && stat -c '%a %U %n' var/lib/palisade var/lib/palisade/images run/palisade etc/palisade 2>&1)
  want=$'700 root var/lib/palisade\n700 root var/lib/palisade/images\n755 root run/palisade\n755 root etc/palisade'
  if [ "$got" = "$want" ]; then
    ok "tmpfiles: $tmpfiles creates its four directories with the intended modes"
  else
    fail "tmpfiles: $tmpfiles created something else" "$got"
  fi
}

# --- desktop file and metainfo (owned by the app; checked once they exist) ----------------------
check_desktop() {
  local files=(data/*.desktop) f out
  if [ ! -e "${files[0]}" ]; then skip "desktop: no data/*.desktop yet"; return; fi
  if ! have desktop-file-validate; then fail "desktop: desktop-file-validate not installed (apt install desktop-file-utils)"; return; fi
  for f in "${files[@]}"; do
    # Errors fail the exit status; warnings are failures here too; hints are advice only.
    if out=$(desktop-file-validate "$f" 2>&1) && ! grep -q 'warning:' <<<"$out"; then
      ok "desktop: $f is valid"
    else
      fail "desktop: desktop-file-validate complains about $f" "$out"
    fi
  done
}

check_metainfo() {
  local files=(data/*.metainfo.xml) f out
  if [ ! -e "${files[0]}" ]; then skip "metainfo: no data/*.metainfo.xml yet"; return; fi
  if ! have appstreamcli; then fail "metainfo: appstreamcli not installed (apt install appstream)"; return; fi
  for f in "${files[@]}"; do
    if out=$(appstreamcli validate --no-net "$f" 2>&1); then
      ok "metainfo: $f is valid"
    else
      fail "metainfo: appstreamcli validate --no-net complains about $f" "$out"
    fi
  done
}

# --- translations ------------------------------------------------------------------------------
# Every Rust file that marks a string for translation (a gettext-family call with a literal) must
# be listed in po/POTFILES, or its strings never reach the translators; and every listed file
# must exist.
check_potfiles() {
  if [ ! -d po ]; then skip "POTFILES: no po/ folder yet"; return; fi
  if [ ! -f po/POTFILES ]; then skip "POTFILES: no po/POTFILES yet"; return; fi
  local listed marked missing gone
  listed=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' po/POTFILES | sort -u)
  marked=$(find app helper dbus -name '*.rs' -not -path '*/target/*' -print0 2>/dev/null | sort -z |
    xargs -0 -r perl -0777 -ne \
      'print "$ARGV\n" if /\b(?:n?p?gettext|n?i18n_f)\s*\(\s*(?:[A-Za-z0-9_]+\s*,\s*)?r?#*"/' | sort -u)
  missing=$(comm -23 <(echo "$marked") <(echo "$listed") | sed '/^$/d')
  gone=$(while read -r f; do [ -n "$f" ] && [ ! -e "$f" ] && echo "$f"; done <<<"$listed")
  if [ -z "$missing" ] && [ -z "$gone" ]; then
    ok "POTFILES: lists all $(echo "$marked" | sed '/^$/d' | wc -l) Rust files with translatable strings"
  else
    fail "POTFILES: po/POTFILES is out of date" \
      "$( [ -n "$missing" ] && printf 'not listed: %s\n' $missing; [ -n "$gone" ] && printf 'listed but missing: %s\n' $gone)"
  fi
}

check_scripts
check_layers
check_polkit_actions
check_polkit_rules
check_dbus
check_systemd
check_systemd_security
check_tmpfiles
check_desktop
check_metainfo
check_potfiles

if [ "$failures" -gt 0 ]; then
  echo "validate-data: $failures check(s) failed"
  exit 1
fi
echo "validate-data: all data files are valid"
