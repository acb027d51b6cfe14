#!/usr/bin/python3
# -*- coding: utf-8 -*-
# Copyright: Palisade developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: palisade_facts
short_description: Palisade's status and policy sources as facts
version_added: "0.1.0"
description:
  - Reads C(palisadectl --json status) and C(palisadectl --json policy sources) and returns
    them as the fact C(palisade), holding the live generation, whether it waits for confirmation, what
    made it, the policy's hash, whether it drifted from the drop-ins, and which files the
    policy is merged from.
  - Talks to the helper only through C(palisadectl --json); no D-Bus bindings are needed.
  - Changes nothing.
options:
  palisadectl:
    description:
      - The palisadectl program, by name (looked up in C(PATH)) or by path.
    type: path
    default: palisadectl
  bus_address:
    description:
      - The D-Bus system bus to reach the helper on, as C(DBUS_SYSTEM_BUS_ADDRESS). By default
        palisadectl uses the host's system bus.
    type: str
notes:
  - Supports check mode (it only reads).
  - The caller needs polkit's C(io.palisade.policy.read) for the sources; run it as root
    (C(become=true)) or as a user a polkit rule allows.
requirements:
  - palisadectl on the managed host, from the same Palisade version as its helper
author:
  - Palisade developers
"""

EXAMPLES = r"""
- name: Read Palisade's state
  become: true
  palisade.fleet.palisade_facts:

- name: Complain about hosts whose live policy is not what the drop-ins say
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} runs generation {{ ansible_facts.palisade.generation }}, {{ ansible_facts.palisade.drift }}"
  when: ansible_facts.palisade.drift != "in sync"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: complex
  contains:
    palisade:
      description:
        - Everything C(palisadectl --json status) reports (among others C(version),
          C(generation), C(pending_until), C(vms), C(rules), C(table_present), C(problem),
          C(source), C(policy_hash), C(applied_at), C(drift), C(dns_names)), plus
          C(sources), C(admin_dir), C(vendor_dir) and C(local_file) from
          C(palisadectl --json policy sources).
      returned: always
      type: dict
      sample:
        version: "0.1.0"
        generation: 7
        pending_until: 0
        vms: 2
        rules: 14
        table_present: true
        problem: ""
        source: drop-ins
        policy_hash: 3f2a9c0e...
        applied_at: 1767225600
        drift: in sync
        dns_names: []
        sources:
          - name: 50-office.toml
            kind: admin
            path: /etc/palisade/policy.d/50-office.toml
        admin_dir: /etc/palisade/policy.d
        vendor_dir: /usr/lib/palisade/policy.d
        local_file: /etc/palisade/policy.toml
"""

import json

from ansible.module_utils.basic import AnsibleModule


def run(module, program, environ, args):
    cmd = [program, "--json"] + args
    rc, out, err = module.run_command(cmd, environ_update=environ)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    if rc == 0 and isinstance(doc, dict) and "error" not in doc:
        return doc
    if isinstance(doc, dict) and "error" in doc:
        module.fail_json(
            msg="palisadectl %s: %s" % (" ".join(args), doc.get("message", doc["error"])),
            error=doc["error"],
            rc=rc,
            cmd=cmd,
        )
    module.fail_json(
        msg="palisadectl %s failed (exit status %d): %s"
        % (" ".join(args), rc, (err or out).strip() or "no output"),
        rc=rc,
        stdout=out,
        stderr=err,
        cmd=cmd,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            palisadectl=dict(type="path", default="palisadectl"),
            bus_address=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    program = module.params["palisadectl"]
    if "/" not in program:
        program = module.get_bin_path(program, required=True)
    environ = {}
    if module.params.get("bus_address"):
        environ["DBUS_SYSTEM_BUS_ADDRESS"] = module.params["bus_address"]

    facts = run(module, program, environ, ["status"])
    sources = run(module, program, environ, ["policy", "sources"])
    # Names, kinds and paths: the documents themselves are for `palisadectl policy sources`.
    facts["sources"] = [
        dict(name=s.get("name"), kind=s.get("kind"), path=s.get("path"))
        for s in sources.get("sources") or []
    ]
    for key in ("admin_dir", "vendor_dir", "local_file"):
        facts[key] = sources.get(key)
    module.exit_json(changed=False, ansible_facts=dict(palisade=facts))


if __name__ == "__main__":
    main()
