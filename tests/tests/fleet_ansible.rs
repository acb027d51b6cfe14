//! Acceptance test of the fleet issue's Ansible side: the `palisade.fleet` collection
//! (contrib/ansible) driving two hosts, each a complete Palisade installation of its own (its
//! own network namespace, bus, polkitd and helper), with Debian's ansible-core.
//!
//! Ansible runs as root in the test's own namespace with `ansible_connection=local`: a host is
//! its bus address and its palisadectl, which is all the module needs (it talks to the helper
//! only through `palisadectl --json`). The JSON callback gives per-host results and stats.

mod common;

use common::*;
use palisade_tests::{run_bounded, wait_until, workspace_dir, TestEnv};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The drop-in the play installs on both hosts.
const DROP_IN: &str = "50-office.toml";

/// The office's drop-in: VM `office` may reach 127.0.0.1 over tcp/8443, nothing else.
const OFFICE_V1: &str = r#"# Managed by Ansible (palisade.fleet).
[[vm]]
name = "office"
default = "drop"

[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = 8443
comment = "office mail"
"#;

/// What someone writes into host 1's drop-in by hand: port 8444 instead.
const HAND_EDIT: &str = r#"# Edited by hand on host 1.
[[vm]]
name = "office"
default = "drop"

[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = 8444
comment = "office mail, moved"
"#;

/// Host 2's own (local) policy, applied with `palisadectl policy apply` before the play: it
/// defines VM `lab`.
const HOST2_LOCAL: &str = r#"[[vm]]
name = "lab"
default = "drop"
"#;

/// The office's second version: it also defines VM `lab`, which host 2's local policy already
/// defines.
fn office_v2() -> String {
    format!(
        "{OFFICE_V1}\n[[vm]]\nname = \"lab\"\ndefault = \"drop\"\n\n[[vm.rule]]\naction = \"accept\"\n\
         destination = \"127.0.0.1\"\nproto = \"tcp\"\nports = 8445\ncomment = \"lab service\"\n"
    )
}

const PLAYBOOK: &str = r#"---
- name: The office's Palisade drop-in
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Install the office drop-in
      palisade.fleet.palisade_policy:
        name: 50-office.toml
        content: "{{ office_policy }}"
        palisadectl: "{{ palisadectl_path }}"
        bus_address: "{{ palisade_bus }}"
    - name: Read Palisade's state
      palisade.fleet.palisade_facts:
        palisadectl: "{{ palisadectl_path }}"
        bus_address: "{{ palisade_bus }}"
"#;

/// The hosts and a folder for Ansible's files (inside host 1's temp dir, so it goes with it).
struct Fleet {
    hosts: Vec<TestEnv>,
    dir: PathBuf,
}

const NAMES: [&str; 2] = ["host1", "host2"];

impl Fleet {
    /// `count` hosts (at most two), named host1, host2.
    fn start(count: usize) -> Fleet {
        let hosts: Vec<TestEnv> = (0..count.min(NAMES.len()))
            .map(|_| TestEnv::start().unwrap_or_else(|e| panic!("cannot start a test host: {e:#}")))
            .collect();
        let dir = hosts[0].dir().join("ansible");
        for sub in ["", "home", "tmp-local", "tmp-remote"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        Fleet { hosts, dir }
    }

    /// Writes the inventory (JSON is YAML) with `office_policy` as the drop-in's content.
    fn inventory(&self, office_policy: &str) -> PathBuf {
        let mut hosts = serde_json::Map::new();
        for (name, env) in NAMES.iter().zip(&self.hosts) {
            hosts.insert(
                (*name).to_owned(),
                json!({
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "palisade_bus": env.bus_address(),
                    "palisadectl_path": env.bin_dir().join("palisadectl"),
                }),
            );
        }
        let inventory = json!({
            "fleet": { "hosts": hosts, "vars": { "office_policy": office_policy } }
        });
        let path = self.dir.join("inventory.yml");
        std::fs::write(&path, inventory.to_string()).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// `ansible-playbook` of [`PLAYBOOK`] with `office_policy` and `extra` arguments.
    fn play(&self, office_policy: &str, extra: &[&str]) -> Play {
        self.run(PLAYBOOK, office_policy, extra)
    }

    /// `ansible-playbook` of `playbook` with `office_policy` and `extra` arguments; its output
    /// and the JSON callback's report.
    fn run(&self, playbook: &str, office_policy: &str, extra: &[&str]) -> Play {
        let inventory = self.inventory(office_policy);
        let book = self.dir.join("playbook.yml");
        std::fs::write(&book, playbook).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("ansible-playbook");
        cmd.arg("-i")
            .arg(&inventory)
            .arg(&book)
            .args(extra)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", self.dir.join("home"))
            .env(
                "ANSIBLE_COLLECTIONS_PATH",
                workspace_dir().join("contrib/ansible"),
            )
            .env("ANSIBLE_LOCAL_TEMP", self.dir.join("tmp-local"))
            .env("ANSIBLE_REMOTE_TEMP", self.dir.join("tmp-remote"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            // The two hosts share this machine's /etc/passwd, where each helper creates the
            // system user of the drop-in's VM; real hosts do not. One host at a time keeps two
            // useradds off the same lock file.
            .env("ANSIBLE_FORKS", "1");
        let out = run_bounded(&mut cmd, Duration::from_secs(300));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ansible-playbook printed no JSON report ({e}):\n{}",
                text(&out)
            )
        });
        Play { out, report }
    }
}

struct Play {
    out: Output,
    report: Value,
}

impl Play {
    /// `stats[host][what]` (ok, changed, failures, ...).
    fn stat(&self, host: &str, what: &str) -> u64 {
        self.report["stats"][host][what]
            .as_u64()
            .unwrap_or_else(|| panic!("no stats.{host}.{what} in {}", self.report["stats"]))
    }

    /// The (first) palisade_policy task's result for `host`.
    fn result(&self, host: &str) -> &Value {
        self.task(0, host)
    }

    /// Task `index`'s result for `host`.
    fn task(&self, index: usize, host: &str) -> &Value {
        let result = &self.report["plays"][0]["tasks"][index]["hosts"][host];
        assert!(
            result.is_object(),
            "no result of task {index} for {host}: {}",
            self.describe()
        );
        result
    }

    fn describe(&self) -> String {
        format!(
            "{}\n--- report\n{:#}",
            text(&self.out),
            self.report["plays"][0]["tasks"]
        )
    }
}

fn status(env: &TestEnv) -> Value {
    let out = ok(env, env.palisadectl(None, &["--json", "status"]));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn sources(env: &TestEnv) -> Value {
    let out = ok(env, env.palisadectl(None, &["--json", "policy", "sources"]));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn gen_of(status: &Value) -> u64 {
    status["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation in {status}"))
}

fn admin_dir(env: &TestEnv) -> PathBuf {
    env.config_dir().join("policy.d")
}

fn drop_in(env: &TestEnv) -> PathBuf {
    admin_dir(env).join(DROP_IN)
}

/// What the drop-in folder holds, names sorted (nothing when it does not exist).
fn folder(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(admin_dir(env))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The diff the module returned: the drop-in file's (before, after) and the helper's prepared
/// text (the merged policy's and the ruleset's changes), joined.
fn diff_of(result: &Value) -> (String, String, String) {
    let parts = result["diff"]
        .as_array()
        .unwrap_or_else(|| panic!("no diff in {result:#}"));
    let file = parts
        .iter()
        .find(|d| d.get("before").is_some() && d.get("after").is_some())
        .unwrap_or_else(|| panic!("no file diff in {result:#}"));
    let prepared: Vec<&str> = parts
        .iter()
        .filter_map(|d| d["prepared"].as_str())
        .collect();
    (
        file["before"].as_str().unwrap_or_default().to_owned(),
        file["after"].as_str().unwrap_or_default().to_owned(),
        prepared.join("\n"),
    )
}

#[test]
fn ansible_manages_the_drop_ins_of_two_hosts() {
    let fleet = Fleet::start(2);
    let (host1, host2) = (&fleet.hosts[0], &fleet.hosts[1]);

    // Host 2 has a policy of its own, made on the machine: VM lab.
    apply(host2, HOST2_LOCAL, &[]);
    let g1 = gen_of(&status(host1));
    let g2 = gen_of(&status(host2));
    assert_eq!(status(host2)["vms"], 1, "host 2's local policy is not live");

    // 1. --check --diff shows the change on both hosts and changes nothing.
    let play = fleet.play(OFFICE_V1, &["--check", "--diff"]);
    assert!(play.out.status.success(), "{}", play.describe());
    for (name, env, before) in [("host1", host1, g1), ("host2", host2, g2)] {
        assert_eq!(play.stat(name, "changed"), 1, "{}", play.describe());
        let result = play.result(name);
        let (was, will, prepared) = diff_of(result);
        assert_eq!(was, "", "{name}: the drop-in exists already");
        assert_eq!(
            will, OFFICE_V1,
            "{name}: the diff does not show the new file"
        );
        assert!(
            prepared.contains("office") && prepared.contains("8443"),
            "{name}: the helper's diff does not show VM office's rule:\n{prepared}"
        );
        assert_eq!(
            folder(env),
            Vec::<String>::new(),
            "{name}: check mode wrote into the drop-in folder"
        );
        assert_eq!(
            gen_of(&status(env)),
            before,
            "{name}: check mode applied something"
        );
    }

    // 2. The first run installs the drop-in and applies it as one new generation.
    let _listener = listen(host1, &[8443, 8444, 8445]);
    let play = fleet.play(OFFICE_V1, &[]);
    assert!(play.out.status.success(), "{}", play.describe());
    for (name, env, before, vms) in [("host1", host1, g1, 1), ("host2", host2, g2, 2)] {
        assert_eq!(play.stat(name, "changed"), 1, "{}", play.describe());
        let result = play.result(name);
        let st = status(env);
        assert_eq!(gen_of(&st), before + 1, "{name}: {st}");
        assert_eq!(result["generation"], st["generation"], "{name}: {result:#}");
        assert_eq!(st["source"], "drop-ins", "{name}: {st}");
        assert_eq!(st["drift"], "in sync", "{name}: {st}");
        assert_eq!(st["pending_until"], 0, "{name}: {st}");
        assert_eq!(
            result["policy_hash"], st["policy_hash"],
            "{name}: {result:#}"
        );
        assert_eq!(st["vms"], vms, "{name}: the drop-in's VM is not live: {st}");
        assert_eq!(read(&drop_in(env)), OFFICE_V1, "{name}");
        let mode = std::fs::metadata(drop_in(env))
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{name}: the drop-in's mode");
        assert_eq!(
            folder(env),
            vec![DROP_IN.to_owned()],
            "{name}: leftovers in the drop-in folder"
        );
        let src = sources(env);
        assert_eq!(
            PathBuf::from(src["admin_dir"].as_str().unwrap_or_default()),
            admin_dir(env),
            "{name}: {src}"
        );
        let listed = src["sources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == DROP_IN).cloned())
            .unwrap_or_else(|| panic!("{name}: the drop-in is not a source: {src}"));
        assert_eq!(listed["kind"], "admin", "{name}: {listed}");
        assert_eq!(listed["document"], OFFICE_V1, "{name}: {listed}");
    }
    // The rule is in force: VM office's user reaches 8443 and nothing else.
    assert!(
        connects(host1, "palisade-vm-office", 8443),
        "the drop-in's rule does not let VM office reach 8443"
    );
    assert!(
        !connects(host1, "palisade-vm-office", 8444),
        "VM office reaches 8444, which no rule allows"
    );
    let applied = [gen_of(&status(host1)), gen_of(&status(host2))];

    // 3. The second run changes nothing and leaves the generation alone.
    let play = fleet.play(OFFICE_V1, &["--diff"]);
    assert!(play.out.status.success(), "{}", play.describe());
    for (i, (name, env)) in NAMES.iter().zip([host1, host2]).enumerate() {
        assert_eq!(play.stat(name, "changed"), 0, "{}", play.describe());
        assert_eq!(play.result(name)["changed"], false, "{}", play.describe());
        assert_eq!(gen_of(&status(env)), applied[i], "{name}: a new generation");
        // The facts module reports the same.
        let facts = &play.task(1, name)["ansible_facts"]["palisade"];
        assert_eq!(facts["generation"], applied[i], "{name}: {facts:#}");
        assert_eq!(facts["source"], "drop-ins", "{name}: {facts:#}");
        assert_eq!(facts["drift"], "in sync", "{name}: {facts:#}");
        assert_eq!(
            facts["policy_hash"],
            status(env)["policy_hash"],
            "{name}: {facts:#}"
        );
        assert!(
            facts["sources"].as_array().is_some_and(|s| s
                .iter()
                .any(|s| s["name"] == DROP_IN && s["kind"] == "admin")),
            "{name}: {facts:#}"
        );
    }

    // 4. A hand edit on host 1: the helper's watch applies it; the next --check shows it, on
    //    host 1 only, with the diff that would undo it.
    std::fs::write(drop_in(host1), HAND_EDIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_until(Duration::from_secs(20), || gen_of(&status(host1))
            > applied[0]),
        "the helper did not apply the hand-edited drop-in: {}\n{}",
        status(host1),
        host1.helper_log()
    );
    let edited = gen_of(&status(host1));
    let play = fleet.play(OFFICE_V1, &["--check", "--diff"]);
    assert!(play.out.status.success(), "{}", play.describe());
    assert_eq!(play.stat("host1", "changed"), 1, "{}", play.describe());
    assert_eq!(play.stat("host2", "changed"), 0, "{}", play.describe());
    let (was, will, prepared) = diff_of(play.result("host1"));
    assert_eq!((was.as_str(), will.as_str()), (HAND_EDIT, OFFICE_V1));
    assert!(
        prepared.contains("8444") && prepared.contains("8443"),
        "the helper's diff does not show the rule going back:\n{prepared}"
    );
    assert_eq!(
        read(&drop_in(host1)),
        HAND_EDIT,
        "check mode rewrote the file"
    );
    assert_eq!(
        gen_of(&status(host1)),
        edited,
        "check mode applied something"
    );
    assert_eq!(gen_of(&status(host2)), applied[1]);

    // 5. Version 2 also defines VM lab, which host 2's local policy defines: host 2 fails with
    //    the helper's sentence naming both files and is left as it was; host 1 is updated (and
    //    its hand edit undone).
    let v2 = office_v2();
    let local_file = sources(host2)["local_file"]
        .as_str()
        .map(|f| {
            Path::new(f)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| panic!("no local_file in {}", sources(host2)));
    let play = fleet.play(&v2, &[]);
    assert!(!play.out.status.success(), "{}", play.describe());
    assert_eq!(play.stat("host2", "failures"), 1, "{}", play.describe());
    let failed = play.result("host2");
    let msg = failed["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("lab") && msg.contains(DROP_IN) && msg.contains(&local_file),
        "host 2's failure does not name VM lab, {DROP_IN} and {local_file}: {msg}"
    );
    assert_eq!(read(&drop_in(host2)), OFFICE_V1, "host 2's drop-in changed");
    assert_eq!(folder(host2), vec![DROP_IN.to_owned()]);
    assert_eq!(
        gen_of(&status(host2)),
        applied[1],
        "host 2 applied something"
    );
    assert_eq!(status(host2)["drift"], "in sync");

    assert_eq!(play.stat("host1", "failures"), 0, "{}", play.describe());
    assert_eq!(play.stat("host1", "changed"), 1, "{}", play.describe());
    let st = status(host1);
    assert_eq!(gen_of(&st), edited + 1, "{st}");
    assert_eq!(st["vms"], 2, "{st}");
    assert_eq!(st["source"], "drop-ins", "{st}");
    assert_eq!(st["drift"], "in sync", "{st}");
    assert_eq!(read(&drop_in(host1)), v2);
    assert!(
        connects(host1, "palisade-vm-office", 8443),
        "the hand edit was not undone"
    );
    assert!(
        connects(host1, "palisade-vm-lab", 8445),
        "VM lab's rule is not in force on host 1"
    );
    assert!(!connects(host1, "palisade-vm-lab", 8443));
}

/// A play that applies with a confirm window, tries another drop-in while the generation waits,
/// and confirms.
const CONFIRM_PLAYBOOK: &str = r#"---
- name: A change to be confirmed
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Install the office drop-in, to be confirmed within 10 minutes
      palisade.fleet.palisade_policy:
        name: 50-office.toml
        content: "{{ office_policy }}"
        confirm_seconds: 600
        palisadectl: "{{ palisadectl_path }}"
        bus_address: "{{ palisade_bus }}"
      register: office
    - name: Another drop-in while that generation waits
      palisade.fleet.palisade_policy:
        name: 60-other.toml
        content: "[[host_rule]]\naction = \"reject\"\nproto = \"tcp\"\nports = 25\n"
        palisadectl: "{{ palisadectl_path }}"
        bus_address: "{{ palisade_bus }}"
      ignore_errors: true
    - name: Keep the new generation
      palisade.fleet.palisade_policy:
        name: 50-office.toml
        confirm_generation: "{{ office.generation }}"
        palisadectl: "{{ palisadectl_path }}"
        bus_address: "{{ palisade_bus }}"
      when: office.pending_until > 0
"#;

/// Removes the office drop-in.
const ABSENT_PLAYBOOK: &str = r#"---
- name: Retire the office drop-in
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Remove it
      palisade.fleet.palisade_policy:
        name: 50-office.toml
        state: absent
        palisadectl: "{{ palisadectl_path }}"
        bus_address: "{{ palisade_bus }}"
"#;

/// The confirm pattern the collection's README documents, and state=absent, on one host.
#[test]
fn ansible_confirms_a_pending_generation_and_removes_a_drop_in() {
    let fleet = Fleet::start(1);
    let host = &fleet.hosts[0];
    let before = gen_of(&status(host));

    let play = fleet.run(CONFIRM_PLAYBOOK, OFFICE_V1, &[]);
    assert!(play.out.status.success(), "{}", play.describe());
    let office = play.task(0, "host1");
    assert_eq!(office["changed"], true, "{office:#}");
    assert_eq!(office["generation"], before + 1, "{office:#}");
    assert!(
        office["pending_until"].as_u64().unwrap_or(0) > 0,
        "the generation does not wait for confirmation: {office:#}"
    );
    // While it waits, nothing else is applied, and nothing is written.
    let other = play.task(1, "host1");
    assert_eq!(other["failed"], true, "{other:#}");
    assert!(
        other["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("waits for confirmation"),
        "{other:#}"
    );
    assert_eq!(folder(host), vec![DROP_IN.to_owned()]);
    // The confirm task confirmed it.
    let confirmed = play.task(2, "host1");
    assert_eq!(confirmed["changed"], true, "{confirmed:#}");
    assert_eq!(confirmed["confirmed"], before + 1, "{confirmed:#}");
    let st = status(host);
    assert_eq!(gen_of(&st), before + 1, "{st}");
    assert_eq!(st["pending_until"], 0, "{st}");
    assert_eq!(st["vms"], 1, "{st}");

    // Again: nothing to install, nothing to confirm.
    let play = fleet.run(CONFIRM_PLAYBOOK, OFFICE_V1, &[]);
    assert!(play.out.status.success(), "{}", play.describe());
    assert_eq!(play.stat("host1", "changed"), 1, "{}", play.describe());
    assert_eq!(play.task(0, "host1")["changed"], false);
    assert_eq!(play.task(0, "host1")["pending_until"], 0);
    // The other drop-in goes in now that nothing waits.
    assert_eq!(play.task(1, "host1")["changed"], true);
    assert_eq!(gen_of(&status(host)), before + 2);

    // state=absent: --check says it would remove it and does not; the run removes it and
    // applies the policy without it; a second run changes nothing.
    let play = fleet.run(ABSENT_PLAYBOOK, "", &["--check", "--diff"]);
    assert!(play.out.status.success(), "{}", play.describe());
    assert_eq!(play.stat("host1", "changed"), 1, "{}", play.describe());
    let (was, will, prepared) = diff_of(play.result("host1"));
    assert_eq!((was.as_str(), will.as_str()), (OFFICE_V1, ""));
    assert!(prepared.contains("office"), "{prepared}");
    assert!(drop_in(host).exists());
    assert_eq!(gen_of(&status(host)), before + 2);

    let play = fleet.run(ABSENT_PLAYBOOK, "", &[]);
    assert!(play.out.status.success(), "{}", play.describe());
    assert_eq!(play.stat("host1", "changed"), 1, "{}", play.describe());
    assert!(!drop_in(host).exists(), "the drop-in is still there");
    let st = status(host);
    assert_eq!(gen_of(&st), before + 3, "{st}");
    assert_eq!(st["vms"], 0, "{st}");
    assert_eq!(st["drift"], "in sync", "{st}");

    let play = fleet.run(ABSENT_PLAYBOOK, "", &[]);
    assert!(play.out.status.success(), "{}", play.describe());
    assert_eq!(play.stat("host1", "changed"), 0, "{}", play.describe());
    assert_eq!(gen_of(&status(host)), before + 3);
}
