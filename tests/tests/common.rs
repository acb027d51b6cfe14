//! Pieces shared by the end-to-end test files: policies, assertions on command output, the
//! connection tool, and a normalised view of our table.
#![allow(dead_code)] // each test file uses a different subset

use palisade_tests::{TestEnv, ADMIN};
use std::process::Output;

/// Text of a command's stdout and stderr, for messages and matching.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with the helper log unless the command succeeded.
#[track_caller]
pub fn ok(env: &TestEnv, out: Output) -> Output {
    if !out.status.success() {
        panic!(
            "command failed: {}\n--- helper log\n{}",
            text(&out),
            env.helper_log()
        );
    }
    out
}

/// A policy where VM `work` may reach only 127.0.0.1 over tcp/`port`.
pub fn work_policy(port: u16) -> String {
    format!(
        r#"
[[vm]]
name = "work"
operators = {{ users = ["pal-alice"] }}
console = {{ users = ["pal-alice"] }}
default = "drop"

[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = {port}
comment = "the test listener"
"#
    )
}

/// Applies `doc` as pal-admin and returns the new generation.
pub fn apply(env: &TestEnv, doc: &str, extra: &[&str]) -> u64 {
    let file = env
        .write_file("policy.toml", doc)
        .unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_string_lossy().into_owned();
    let mut args = vec!["--json", "policy", "apply", path.as_str()];
    args.extend_from_slice(extra);
    let out = ok(env, env.palisadectl(Some(ADMIN), &args));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    v["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation in {v}"))
}

/// The live generation, asked as root.
pub fn generation(env: &TestEnv) -> u64 {
    let out = ok(env, env.palisadectl(None, &["--json", "status"]));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    v["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation in {v}"))
}

/// `nft -j list table inet palisade` exactly as the kernel prints it.
pub fn table_raw(env: &TestEnv) -> String {
    let out = ok(env, env.nft(&["-j", "list", "table", "inet", "palisade"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Our table without handles and counters, which change when the same ruleset is loaded again.
pub fn table_normalised(env: &TestEnv) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("handle");
                if map.contains_key("packets") && map.contains_key("bytes") {
                    map.insert("packets".into(), 0.into());
                    map.insert("bytes".into(), 0.into());
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&table_raw(env)).unwrap_or_else(|e| panic!("{e}"));
    if let Some(items) = v.get_mut("nftables").and_then(|n| n.as_array_mut()) {
        items.retain(|i| i.get("metainfo").is_none());
    }
    strip(&mut v);
    v
}

/// The path of the connection tool (see tests/tools/netcheck.py), where every user can run it.
pub fn netcheck(env: &TestEnv) -> String {
    let tool = palisade_tests::workspace_dir().join("tests/tools/netcheck.py");
    env.user_path(&tool).to_string_lossy().into_owned()
}

/// Echo listeners; killed and reaped when dropped.
pub struct Listener(std::process::Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts echo listeners on 127.0.0.1 for `ports`, as root, and waits until they accept.
pub fn listen(env: &TestEnv, ports: &[u16]) -> Listener {
    let mut argv = vec!["python3".to_owned(), netcheck(env), "listen".to_owned()];
    argv.extend(ports.iter().map(u16::to_string));
    let mut child = env.spawn_as(None, &argv).unwrap_or_else(|e| panic!("{e}"));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let listener = Listener(child);
    assert_eq!(line.trim(), "ready", "listener did not start");
    listener
}

/// Connects to 127.0.0.1:`port` as `user`; true if the connection was established.
pub fn connects(env: &TestEnv, user: &str, port: u16) -> bool {
    let out = env.run_as(
        Some(user),
        &[
            "python3".to_owned(),
            netcheck(env),
            "connect".into(),
            "127.0.0.1".into(),
            port.to_string(),
        ],
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with("connected") || s.starts_with("failed"),
        "netcheck: {}",
        text(&out)
    );
    out.status.success()
}

/// Packets counted by the rule of `chain` whose comment is `comment`.
pub fn counter(env: &TestEnv, chain: &str, comment: &str) -> u64 {
    let out = ok(
        env,
        env.nft(&["-j", "list", "chain", "inet", "palisade", chain]),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let rules = v["nftables"].as_array().cloned().unwrap_or_default();
    rules
        .iter()
        .filter_map(|i| i.get("rule"))
        .find(|r| r["comment"] == comment)
        .and_then(|r| r["expr"].as_array().cloned())
        .and_then(|exprs| {
            exprs
                .iter()
                .find_map(|e| e.get("counter").and_then(|c| c["packets"].as_u64()))
        })
        .unwrap_or_else(|| panic!("no counter on rule {comment:?} in chain {chain}: {v}"))
}
