#!/usr/bin/env bash
# Removes what the end-to-end tests leave on the machine: the test users and group, the per-VM
# users the helper created, and — after a crashed run whose Drop never ran — every process in a
# leftover pal-* network namespace, the namespace itself and its /tmp/palisade-test-* dir.
# Idempotent; run as root after `cargo test -p palisade-tests`. Touches nothing else: only names
# with the harness's prefixes.
set -uo pipefail

for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^pal-' || true); do
  # Everything a test starts runs inside its namespace, so this catches bus, polkitd, helper,
  # QEMU and any spawned listener.
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
    sleep 0.2
  done
  ip netns delete "$ns" && echo "cleanup: removed netns $ns"
done

# Files a test put in place for one namespace's processes (ip netns exec bind-mounts them over /etc).
for dir in /etc/netns/pal-*; do
  [ -d "$dir" ] || continue
  rm -rf -- "$dir" && echo "cleanup: removed $dir"
done

for dir in /tmp/palisade-test-*; do
  [ -d "$dir" ] || continue
  # A polkitd that died mid-test may leave nothing mounted, but be safe before deleting.
  grep -q " $dir" /proc/mounts && continue
  rm -rf -- "$dir" && echo "cleanup: removed $dir"
done

for user in $(getent passwd | cut -d: -f1 | grep -E '^(pal-alice|pal-bob|pal-admin|palisade-vm-.*)$' || true); do
  userdel "$user" && echo "cleanup: removed user $user"
done
for group in pal-alice pal-bob pal-admin palisade-admin; do
  getent group "$group" >/dev/null && groupdel "$group" && echo "cleanup: removed group $group"
done
exit 0
