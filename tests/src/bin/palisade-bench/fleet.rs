//! The fleet rows: how long a changed drop-in takes to become the live generation through the
//! helper's path watch (next to the same change made with `palisadectl policy apply` of the
//! local policy), and a no-op Ansible run of the `palisade.fleet` collection on one host (next
//! to a play of one `ansible.builtin.ping` on the same host, in the same run: what Ansible costs
//! by itself).

use super::{ms, palisadectl_ok, Row};
use anyhow::{anyhow, Context as _, Result};
use palisade_dbus::proxy::HelperProxy;
use palisade_tests::{run_bounded, workspace_dir, TestEnv};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Changes timed per path (drop-in, local policy).
const CHANGES: u16 = 10;
/// Ansible runs timed per play.
const PLAYS: usize = 5;
/// How often the drop-in row asks the helper for its generation.
const POLL: Duration = Duration::from_millis(5);

/// One host rule, rejecting tcp/`port`: the change both paths make (host rules from the drop-ins
/// and from the local policy add up, so neither path's change conflicts with the other's).
fn host_rule(port: u16) -> String {
    format!("[[host_rule]]\naction = \"reject\"\nproto = \"tcp\"\nports = {port}\ncomment = \"bench {port}\"\n")
}

pub async fn fleet_rows(env: &TestEnv) -> Result<Vec<Row>> {
    let conn = zbus::connection::Builder::address(env.bus_address())
        .build()
        .await?;
    let helper = HelperProxy::new(&conn).await?;
    let folder = env.config_dir().join("policy.d");
    std::fs::create_dir_all(&folder)?;
    let mut rows = Vec::new();

    // A changed drop-in, written as configuration management writes it (a dotfile renamed into
    // place), until Status reports the next generation.
    let mut watched = Vec::new();
    for i in 0..CHANGES {
        let before = helper.status().await?.generation;
        let started = Instant::now();
        write_atomically(&folder, "50-bench.toml", &host_rule(20_000 + i))?;
        let deadline = started + Duration::from_secs(10);
        loop {
            if helper.status().await?.generation > before {
                watched.push(started.elapsed());
                break;
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "the helper did not apply a changed drop-in within 10 s: {}",
                    env.helper_log()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    // The same change to the local policy, with palisadectl (a process, the bus, the apply).
    let mut applied = Vec::new();
    for i in 0..CHANGES {
        let file = env.write_file("bench-local.toml", host_rule(30_000 + i))?;
        let started = Instant::now();
        palisadectl_ok(env, &["policy", "apply", &file.to_string_lossy()])?;
        applied.push(started.elapsed());
    }
    rows.push((
        format!(
            "fleet: changed drop-in to new generation live, median / p90 ({CHANGES} changes; \
             the path watch waits 300 ms for writes to settle)"
        ),
        median_p90(&watched),
        format!(
            "`palisadectl policy apply` of the same change to the local policy: {}",
            median_p90(&applied)
        ),
        "-".into(),
    ));

    // A no-op Ansible run: the drop-in the play installs is in place and live.
    let ansible = Ansible::new(env)?;
    ansible.play(POLICY_PLAY)?;
    let mut noop = Vec::new();
    let mut ping = Vec::new();
    for _ in 0..PLAYS {
        let (took, changed) = ansible.play(POLICY_PLAY)?;
        if changed != 0 {
            return Err(anyhow!("the no-op Ansible run changed {changed} things"));
        }
        noop.push(took);
        ping.push(ansible.play(PING_PLAY)?.0);
    }
    rows.push((
        format!("fleet: no-op Ansible run on one host, median / p90 ({PLAYS} runs)"),
        median_p90(&noop),
        format!(
            "`ansible-playbook` of one ansible.builtin.ping on the same host: {}",
            median_p90(&ping)
        ),
        "under 2 s".into(),
    ));
    Ok(rows)
}

fn median_p90(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return "no samples".into();
    }
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    format!("{} / {}", ms(at(0.5)), ms(at(0.9)))
}

/// Writes `name` in `folder` through a dotfile (which the helper ignores) and one rename.
fn write_atomically(folder: &Path, name: &str, content: &str) -> Result<()> {
    let tmp = folder.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, folder.join(name))?;
    Ok(())
}

const POLICY_PLAY: &str = r#"---
- name: The bench's drop-in
  hosts: all
  gather_facts: false
  tasks:
    - name: Install it
      palisade.fleet.palisade_policy:
        name: 60-ansible-bench.toml
        content: "[[host_rule]]\naction = \"reject\"\nproto = \"tcp\"\nports = 25\n"
        palisadectl: "{{ palisadectl_path }}"
        bus_address: "{{ palisade_bus }}"
"#;

const PING_PLAY: &str = r#"---
- name: Ansible alone
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"#;

/// ansible-playbook against the environment as host `bench` (local connection, its bus and
/// palisadectl), with the repository's collection and its files in the environment's dir.
struct Ansible {
    dir: PathBuf,
}

impl Ansible {
    fn new(env: &TestEnv) -> Result<Ansible> {
        let dir = env.dir().join("ansible-bench");
        for sub in ["", "home", "tmp-local", "tmp-remote"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let inventory = json!({
            "all": { "hosts": { "bench": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "/usr/bin/python3",
                "palisade_bus": env.bus_address(),
                "palisadectl_path": env.bin_dir().join("palisadectl"),
            } } }
        });
        std::fs::write(dir.join("inventory.yml"), inventory.to_string())?;
        Ok(Ansible { dir })
    }

    /// Runs `playbook`; how long it took and how many tasks it changed.
    fn play(&self, playbook: &str) -> Result<(Duration, u64)> {
        let book = self.dir.join("playbook.yml");
        std::fs::write(&book, playbook)?;
        let mut cmd = Command::new("ansible-playbook");
        cmd.arg("-i")
            .arg(self.dir.join("inventory.yml"))
            .arg(&book)
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
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0");
        let started = Instant::now();
        let out = run_bounded(&mut cmd, Duration::from_secs(120));
        let took = started.elapsed();
        if !out.status.success() {
            return Err(anyhow!(
                "ansible-playbook failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("ansible-playbook's JSON report")?;
        let changed = report["stats"]["bench"]["changed"]
            .as_u64()
            .ok_or_else(|| anyhow!("no stats for host bench: {}", report["stats"]))?;
        Ok((took, changed))
    }
}
