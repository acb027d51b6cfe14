#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright: Palisade developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: palisade_policy
short_description: Install a Palisade policy drop-in and apply it
version_added: "0.1.0"
description:
  - Manages one admin drop-in of Palisade's firewall policy (a TOML file in the folder the
    helper reports as C(admin_dir), normally C(/etc/palisade/policy.d)) and applies the merged
    policy as a new generation when, and only when, that changes what is live.
  - Talks to the helper only through C(palisadectl --json); no D-Bus bindings are needed on the
    managed host, so any Python 3 the host has will do.
  - Every run first validates the merged policy as if the candidate were in place
    (C(palisadectl policy check --candidate)). An invalid candidate fails the task and leaves the
    host exactly as it was; nothing is written.
  - A normal run writes the file atomically (mode 0644) if its content differs, then runs
    C(palisadectl policy reload) when the file was written or when the check reports that the
    live policy differs from what the drop-ins say (drift, as when someone applied something else by
    hand, or the drop-in was edited and not reloaded). An unchanged file on an in-sync host
    changes nothing and keeps the generation number.
  - The helper also watches the folder and reloads by itself shortly after a file changes; the
    module still reports C(changed) when it wrote the file, whichever of the two reloaded.
  - With C(confirm_seconds), the new generation waits for a confirmation; unless
    C(palisadectl policy confirm) (this module with C(confirm_generation)) follows in time, the
    helper restores the previous generation. See the collection's README for the pattern.
  - Needs root on the managed host (C(become=true)), since it writes under C(/etc); polkit must
    also allow the caller C(io.palisade.policy.manage).
options:
  name:
    description:
      - File name of the drop-in in the admin folder, e.g. C(50-office.toml).
      - Must match C([A-Za-z0-9][A-Za-z0-9._-]*\.toml); drop-ins merge in file-name order, so a
        numeric prefix orders them. A file of the same name in the vendor folder
        (C(/usr/lib/palisade/policy.d)) is replaced by this one.
    type: str
    required: true
  content:
    description:
      - The drop-in's TOML text (C([[vm]]), C([[vm.rule]]), C([[host_rule]]), C([[blocklist]]),
        C([settings]) as in Palisade's policy file). Written byte for byte.
      - Required with C(state=present), unless C(confirm_generation) is set.
    type: str
  state:
    description:
      - C(present) installs the drop-in with C(content); C(absent) removes it and applies the
        policy without it (after checking that the rest is valid without it).
    type: str
    choices: [present, absent]
    default: present
  confirm_seconds:
    description:
      - With a value above 0, a generation this task applies must be confirmed within that many
        seconds, or the helper restores the previous one. The task then returns C(generation)
        and C(pending_until); confirm with a later task that sets C(confirm_generation).
      - 0 applies without a confirm window.
    type: int
    default: 0
  confirm_generation:
    description:
      - Only confirms this generation (C(palisadectl policy confirm N)) and does nothing else;
        C(content), C(state) and C(confirm_seconds) are ignored. Use it in a task after the
        play reached the host again, with the C(generation) an earlier task returned.
      - Reports no change when that generation is live and already confirmed.
    type: int
  palisadectl:
    description:
      - The palisadectl program, by name (looked up in C(PATH)) or by path.
    type: path
    default: palisadectl
  bus_address:
    description:
      - The D-Bus system bus to reach the helper on, as C(DBUS_SYSTEM_BUS_ADDRESS) (for
        example C(unix:path=/run/dbus/system_bus_socket)). By default palisadectl uses the
        host's system bus.
    type: str
notes:
  - Supports check mode, in which it runs only C(palisadectl policy check) on a temporary copy of the
    candidate; no file is written and nothing is applied. C(changed) then means the run would
    write the file or apply a new generation.
  - Supports diff mode; the diff shows the drop-in file before and after, followed by the
    changes of the merged policy and of the nftables ruleset as the helper computed them.
  - A task fails without writing while an earlier generation still waits for its confirmation
    (C(palisadectl) exit status 75) if it would have to apply something.
requirements:
  - palisadectl on the managed host, from the same Palisade version as its helper
author:
  - Palisade developers
"""

EXAMPLES = r"""
- name: Office mail for the work VM on every workstation
  become: true
  palisade.fleet.palisade_policy:
    name: 50-office.toml
    content: |
      [[vm]]
      name = "work"
      default = "drop"

      [[vm.rule]]
      action = "accept"
      destination = "mail.example.com"
      proto = "tcp"
      ports = 443
      comment = "office mail"

- name: The same, from a template, with a safety net of two minutes
  become: true
  palisade.fleet.palisade_policy:
    name: 50-office.toml
    content: "{{ lookup('ansible.builtin.template', 'office.toml.j2') }}"
    confirm_seconds: 120
  register: office

- name: Reach the host again over the new rules
  ansible.builtin.wait_for_connection:
    timeout: 60
  when: office.pending_until > 0

- name: Keep the new generation
  become: true
  palisade.fleet.palisade_policy:
    name: 50-office.toml
    confirm_generation: "{{ office.generation }}"
  when: office.pending_until > 0

- name: Retire a drop-in
  become: true
  palisade.fleet.palisade_policy:
    name: 40-old-lab.toml
    state: absent
"""

RETURN = r"""
path:
  description: The drop-in's full path on the host.
  returned: always
  type: str
  sample: /etc/palisade/policy.d/50-office.toml
written:
  description: Whether the file was written or removed (in check mode, whether it would be).
  returned: always
  type: bool
  sample: true
reloaded:
  description: Whether C(palisadectl policy reload) made a new generation in this run (false
    when the helper's own watch of the folder had already applied the file).
  returned: always
  type: bool
  sample: true
generation:
  description: The live generation after the task (in check mode, the one live now).
  returned: always
  type: int
  sample: 7
pending_until:
  description: Unix time until which the live generation waits for confirmation; 0 when it
    needs none.
  returned: always
  type: int
  sample: 0
policy_hash:
  description: Content hash of the live policy after the task, as C(palisadectl status)
    reports it (in check mode, the hash the merged policy with the candidate would have).
  returned: always
  type: str
  sample: 3f2a9c0e...
source:
  description: What made the live generation (C(drop-ins), C(app), C(palisadectl), C(boot),
    C(other), C(unrecorded)).
  returned: always
  type: str
  sample: drop-ins
drift:
  description: Whether the live policy matches what the drop-ins and the local policy say
    (C(in sync), C(drifted) or C(unreadable)), as read after the task (in check mode, before
    it).
  returned: always
  type: str
  sample: in sync
findings:
  description: Warnings (and, on failure, errors) of the helper's check of the merged policy,
    each with its severity, its path in the policy and a sentence.
  returned: always
  type: list
  elements: dict
  sample: [{"severity": "warning", "path": "vm[work].rule[1]", "message": "..."}]
connections_cut:
  description: Established connections the new generation refused and cut.
  returned: when a new generation was applied
  type: int
  sample: 0
confirmed:
  description: The generation confirmed, with C(confirm_generation).
  returned: with C(confirm_generation)
  type: int
  sample: 7
"""

import errno
import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.toml$")

# palisadectl's exit statuses (see `palisadectl --help`).
EXIT_INVALID = 65
EXIT_CONFLICT = 75


class Palisadectl(object):
    """palisadectl --json, run with the task's bus address; failures end the task."""

    def __init__(self, module):
        self.module = module
        program = module.params["palisadectl"]
        if "/" not in program:
            program = module.get_bin_path(program, required=True)
        self.program = program
        self.environ = {}
        if module.params.get("bus_address"):
            self.environ["DBUS_SYSTEM_BUS_ADDRESS"] = module.params["bus_address"]

    def run(self, args, accept=(0,), errors=()):
        """Runs `palisadectl --json ARGS`; returns (rc, parsed JSON). Fails the task on an
        exit status not in `accept` or on output that is not JSON; an error report
        ({"error", "message"}) is returned, not failed, when its exit status is in `errors`."""
        cmd = [self.program, "--json"] + list(args)
        rc, out, err = self.module.run_command(cmd, environ_update=self.environ)
        doc = None
        text = out.strip()
        if text:
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
        if rc in accept and isinstance(doc, dict) and "error" not in doc:
            return rc, doc
        if isinstance(doc, dict) and "error" in doc:
            if rc in errors:
                return rc, doc
            self.module.fail_json(
                msg="palisadectl %s: %s" % (" ".join(args[:2]), doc.get("message", doc["error"])),
                error=doc["error"],
                rc=rc,
                cmd=cmd,
            )
        self.module.fail_json(
            msg="palisadectl %s failed (exit status %d): %s"
            % (" ".join(args[:2]), rc, (err or out).strip() or "no output"),
            rc=rc,
            stdout=out,
            stderr=err,
            cmd=cmd,
        )


def read_file(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return to_text(f.read(), errors="surrogate_or_strict")
    except IOError as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def check_candidate(module, ctl, name, content):
    """`policy check --candidate TMP --as NAME`: (report, valid). The temp file lives in the
    module's own temp dir, never in the drop-in folder the helper watches."""
    fd, tmp = tempfile.mkstemp(prefix="palisade-candidate-", suffix=".toml", dir=module.tmpdir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(to_bytes(content, errors="surrogate_or_strict"))
        rc, report = ctl.run(
            ["policy", "check", "--candidate", tmp, "--as", name],
            accept=(0, EXIT_INVALID),
            errors=(EXIT_INVALID,),
        )
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    if "error" in report:
        # The helper refused the candidate outright (e.g. it does not merge) with one sentence
        # rather than a list of findings: report that sentence as the one error.
        report = dict(
            valid=False,
            findings=[dict(severity="error", path="", message=report.get("message") or report["error"])],
            error=report["error"],
        )
    valid = rc == 0 and bool(report.get("valid", False))
    return report, valid


def finding_text(f):
    """One finding (or a warning the helper sent with an apply) as a line."""
    if not isinstance(f, dict):
        return to_native(f)
    where = f.get("path") or ""
    return "%s%s: %s" % (f.get("severity", "error"), " at " + where if where else "", f.get("message", ""))


def findings_text(findings):
    return "; ".join(finding_text(f) for f in findings)


def ends(text):
    """`text` ending in a newline."""
    return text if text.endswith("\n") else text + "\n"


def make_diff(path, before, after, report):
    """Ansible's diff: the drop-in file, then the merged policy's and the ruleset's changes."""
    diffs = [
        {
            "before_header": path if before is not None else "%s (absent)" % path,
            "after_header": path if after is not None else "%s (absent)" % path,
            "before": before or "",
            "after": after or "",
        }
    ]
    policy_diff = report.get("policy_diff") or ""
    ruleset_diff = report.get("ruleset_diff") or ""
    if policy_diff:
        diffs.append({"prepared": "merged policy, live -> with this drop-in:\n" + ends(policy_diff)})
    if ruleset_diff:
        diffs.append({"prepared": "nftables ruleset, live -> with this drop-in:\n" + ends(ruleset_diff)})
    return diffs


def write_atomically(module, folder, path, content):
    """Writes `content` to `path` through a dotfile in the same folder (which the helper
    ignores) and one rename, so the helper sees the old file or the new one, never half."""
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o755)
    fd, tmp = tempfile.mkstemp(prefix=".palisade-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(to_bytes(content, errors="surrogate_or_strict"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def status(ctl):
    return ctl.run(["status"])[1]


def confirm(module, ctl, generation):
    st = status(ctl)
    result = dict(
        changed=False,
        confirmed=generation,
        generation=st.get("generation", 0),
        pending_until=st.get("pending_until", 0),
        policy_hash=st.get("policy_hash", ""),
        source=st.get("source", ""),
        drift=st.get("drift", ""),
        written=False,
        reloaded=False,
        findings=[],
        path="",
    )
    if st.get("generation") == generation and not st.get("pending_until"):
        module.exit_json(**result)
    result["changed"] = True
    if not module.check_mode:
        ctl.run(["policy", "confirm", str(generation)])
        st = status(ctl)
        result.update(
            generation=st.get("generation", 0),
            pending_until=st.get("pending_until", 0),
            policy_hash=st.get("policy_hash", ""),
        )
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            content=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            confirm_seconds=dict(type="int", default=0),
            confirm_generation=dict(type="int"),
            palisadectl=dict(type="path", default="palisadectl"),
            bus_address=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    if not NAME_RE.match(name):
        module.fail_json(
            msg="name %r is not a drop-in file name: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit and ending in .toml" % name
        )
    if p["confirm_seconds"] < 0:
        module.fail_json(msg="confirm_seconds must be 0 or more")
    ctl = Palisadectl(module)

    if p["confirm_generation"] is not None:
        confirm(module, ctl, p["confirm_generation"])

    present = p["state"] == "present"
    if present and p["content"] is None:
        module.fail_json(msg="state=present needs content")

    sources = ctl.run(["policy", "sources"])[1]
    folder = sources.get("admin_dir")
    if not folder:
        module.fail_json(msg="palisadectl policy sources named no admin_dir", sources=sources)
    path = os.path.join(folder, name)
    before = read_file(path)
    after = p["content"] if present else None
    differs = before != after

    result = dict(
        changed=False,
        path=path,
        written=False,
        reloaded=False,
        findings=[],
    )

    # The candidate: the content, or for state=absent what the merge sees once the admin file
    # is gone (a vendor file of the same name comes back, else nothing). With state=absent and
    # no file the check still runs, so a drifted host is reported and repaired like with
    # state=present.
    if present:
        candidate = after
    else:
        vendor_dir = sources.get("vendor_dir")
        vendor = read_file(os.path.join(vendor_dir, name)) if vendor_dir else None
        candidate = vendor or ""
    report, valid = check_candidate(module, ctl, name, candidate)
    result["findings"] = report.get("findings", [])
    if not valid:
        module.fail_json(
            msg="the merged policy with %s %s is invalid, so nothing was written or applied: %s"
            % (path, "in place" if present else "removed", findings_text(result["findings"])),
            **result
        )
    would_apply = differs or bool(report.get("changes"))
    # The check's warnings are worth a look when something is about to change; on a run that
    # changes nothing they stay in the result only.
    warned = set()
    if would_apply:
        for f in result["findings"]:
            if f.get("severity") == "warning":
                warned.add(finding_text(f))
                module.warn("%s: %s" % (name, finding_text(f)))

    st = status(ctl)
    if module._diff:
        result["diff"] = make_diff(path, before, after, report)

    if module.check_mode:
        result.update(
            changed=would_apply,
            written=differs,
            generation=st.get("generation", 0),
            pending_until=st.get("pending_until", 0),
            policy_hash=report.get("policy_hash", st.get("policy_hash", "")),
            source=st.get("source", ""),
            drift=st.get("drift", ""),
        )
        if would_apply and st.get("pending_until"):
            module.warn(
                "generation %s waits for confirmation; a real run would fail until it is "
                "confirmed or expires" % st.get("generation")
            )
        module.exit_json(**result)

    if would_apply and st.get("pending_until"):
        module.fail_json(
            msg="generation %s waits for confirmation (until %s): confirm it "
            "(confirm_generation) or let it expire before changing the policy; nothing was "
            "written" % (st.get("generation"), st.get("pending_until")),
            generation=st.get("generation", 0),
            pending_until=st.get("pending_until", 0),
            **result
        )

    if differs:
        if present:
            write_atomically(module, folder, path, after)
        else:
            os.unlink(path)
        result["written"] = True

    if would_apply:
        args = ["policy", "reload"]
        if p["confirm_seconds"] > 0:
            args += ["--confirm", str(p["confirm_seconds"])]
        rc, reload = ctl.run(args, errors=(EXIT_CONFLICT,))
        if rc == EXIT_CONFLICT:
            # The helper's watch got there first with a window of its own
            # ([settings.drop_ins] confirm_seconds): what waits for confirmation is this file.
            now = status(ctl)
            if now.get("pending_until") and now.get("policy_hash") == report.get("policy_hash"):
                reload = {"changed": True, "applied": {"generation": now.get("generation")}}
            else:
                module.fail_json(msg="palisadectl policy reload: %s" % reload.get("message"), **result)
        applied = reload.get("applied") or {}
        result["reloaded"] = bool(reload.get("changed"))
        if result["reloaded"]:
            result["connections_cut"] = applied.get("connections_cut", 0)
        # The apply's own warnings (e.g. something after the commit that did not work); those
        # the check already gave are not repeated.
        for w in applied.get("warnings") or []:
            if finding_text(w) not in warned:
                module.warn("%s: %s" % (name, finding_text(w)))
        if p["confirm_seconds"] > 0 and result["written"] and not result["reloaded"]:
            module.warn(
                "the helper's watch of %s applied the file before this task's reload, "
                "without this task's confirm window; set [settings.drop_ins] watch = false "
                "on hosts managed with confirm windows" % folder
            )

    st = status(ctl)
    result.update(
        changed=result["written"] or result["reloaded"],
        generation=st.get("generation", 0),
        pending_until=st.get("pending_until", 0),
        policy_hash=st.get("policy_hash", ""),
        source=st.get("source", ""),
        drift=st.get("drift", ""),
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
