//! Pieces shared by the end-to-end test files: policies, assertions on command output, the
//! connection tool, a normalised view of our table, and an HTTP server for lists by address.
#![allow(dead_code)] // each test file uses a different subset

use palisade_tests::vm_policy;
use palisade_tests::{TestEnv, ADMIN};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Output;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// Our table without handles and counters, which change when the same ruleset is loaded again,
/// and with its named counters and limits in name order (the kernel lists kept ones before
/// new ones).
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
    strip(&mut v);
    if let Some(items) = v.get_mut("nftables").and_then(|n| n.as_array_mut()) {
        items.retain(|i| i.get("metainfo").is_none());
        let is_object =
            |i: &serde_json::Value| i.get("counter").is_some() || i.get("limit").is_some();
        let mut objects: Vec<serde_json::Value> =
            items.iter().filter(|i| is_object(i)).cloned().collect();
        objects.sort_by_key(|o| o.to_string());
        items.retain(|i| !is_object(i));
        let after_table = 1.min(items.len());
        items.splice(after_table..after_table, objects);
    }
    v
}

/// The path of the connection tool (see tests/tools/netcheck.py), where every user can run it.
pub fn netcheck(env: &TestEnv) -> String {
    let tool = palisade_tests::workspace_dir().join("tests/tools/netcheck.py");
    env.user_path(&tool).to_string_lossy().into_owned()
}

/// Echo listeners; killed and reaped when dropped.
pub struct Listener(pub std::process::Child);

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
    ready_listener(env, &argv)
}

/// Starts an echo listener on `addr`:`port` (`0.0.0.0` for every IPv4 address), as root.
pub fn listen_on(env: &TestEnv, addr: &str, port: u16) -> Listener {
    let argv = [
        "python3".to_owned(),
        netcheck(env),
        "listen-on".to_owned(),
        addr.to_owned(),
        port.to_string(),
    ];
    ready_listener(env, &argv)
}

pub fn ready_listener(env: &TestEnv, argv: &[String]) -> Listener {
    let mut child = env.spawn_as(None, argv).unwrap_or_else(|e| panic!("{e}"));
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
    connects_to_host(env, user, "127.0.0.1", port)
}

/// Connects to `host`:`port` as `user`; true if the connection was established.
pub fn connects_to_host(env: &TestEnv, user: &str, host: &str, port: u16) -> bool {
    let out = env.run_as(
        Some(user),
        &[
            "python3".to_owned(),
            netcheck(env),
            "connect".into(),
            host.into(),
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

/// `palisadectl ARGS` as `user`, running in the background with its output discarded (for a
/// call the test interrupts by killing the helper).
pub fn spawn_palisadectl(env: &TestEnv, user: &str, args: &[&str]) -> std::process::Child {
    let mut argv = vec![env
        .user_path(&env.bin_dir().join("palisadectl"))
        .to_string_lossy()
        .into_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    env.command_as(Some(user), &argv)
        .unwrap_or_else(|e| panic!("{e}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Packets counted by the rule of `chain` whose comment is `comment`: its own counter, or the
/// named counter it counts in.
pub fn counter(env: &TestEnv, chain: &str, comment: &str) -> u64 {
    let out = ok(
        env,
        env.nft(&["-j", "list", "chain", "inet", "palisade", chain]),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let rules = v["nftables"].as_array().cloned().unwrap_or_default();
    let counted = rules
        .iter()
        .filter_map(|i| i.get("rule"))
        .find(|r| r["comment"] == comment)
        .and_then(|r| r["expr"].as_array().cloned())
        .and_then(|exprs| exprs.iter().find_map(|e| e.get("counter").cloned()))
        .unwrap_or_else(|| panic!("no counter on rule {comment:?} in chain {chain}: {v}"));
    match counted.as_str() {
        Some(name) => named_counter(env, name).0,
        None => counted["packets"]
            .as_u64()
            .unwrap_or_else(|| panic!("a counter without packets: {counted}")),
    }
}

/// Packets and bytes of named counter `name` of our table.
pub fn named_counter(env: &TestEnv, name: &str) -> (u64, u64) {
    let out = ok(
        env,
        env.nft(&["-j", "list", "counter", "inet", "palisade", name]),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    v["nftables"]
        .as_array()
        .and_then(|items| items.iter().find_map(|i| i.get("counter")))
        .and_then(|c| Some((c["packets"].as_u64()?, c["bytes"].as_u64()?)))
        .unwrap_or_else(|| panic!("no counter {name}: {v}"))
}

pub const BOOT_CHECKS: &str = "pal.connect=10.0.2.2:8443,10.0.2.2:8444 pal.disk=read,write";

/// Creates VM `work` as pal-admin and installs the guest kernel beside its disk.
pub fn create_work(env: &TestEnv, cmdline: &str) {
    apply(env, "[settings]\naccel = \"tcg\"\n", &[]);
    ok(
        env,
        env.palisadectl(
            Some(ADMIN),
            &[
                "vm",
                "create",
                "work",
                "--disk-size",
                "16M",
                "--memory",
                "256M",
                "--cpus",
                "1",
            ],
        ),
    );
    palisade_tests::install_guest_kernel(env, "work").unwrap_or_else(|e| panic!("{e:#}"));
    apply(env, &vm_policy(cmdline, "\"pal-alice\""), &[]);
}

/// A policy with the lab network `lab` and no VM yet.
pub const LAB_NETWORK: &str = r#"
[settings]
accel = "tcg"

[[network]]
name = "lab"
subnet = "10.77.0.0/24"
address = "10.77.0.1"
"#;

/// The network `vm list --json` reports for `lab1` made on `lab` at 10.77.0.20, reachable at
/// 192.0.2.20 with tcp 2222 forwarded to 22 (its MAC the stable one derived from its name).
pub fn lab1_network() -> serde_json::Value {
    let mac = palisade_dbus::policy::lab::MacAddress::for_vm("lab1").to_string();
    serde_json::json!({
        "mode": "bridge",
        "lab": "lab",
        "address": "10.77.0.20",
        "mac": mac,
        "nat_address": "192.0.2.20",
        "forwards": [{ "proto": "tcp", "port": 2222, "to_port": 22 }],
    })
}

pub fn images(env: &TestEnv) -> PathBuf {
    env.state_dir().join("images/work")
}

pub fn console_log(env: &TestEnv) -> PathBuf {
    env.state_dir().join("run/work/console.log")
}

/// Waits until the console log holds `marker`; returns the PALISADE lines.
pub fn wait_console(env: &TestEnv, marker: &str, limit: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(console_log(env)).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter_map(|l| {
                l.find("PALISADE-")
                    .map(|i| l[i..].trim_end_matches('\r').to_owned())
            })
            .collect();
        if lines.iter().any(|l| l.starts_with(marker)) {
            return lines;
        }
        if started.elapsed() > limit {
            panic!(
                "no {marker} on the guest console after {limit:?}:\n{text}\n--- helper log\n{}",
                env.helper_log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn vm_state(env: &TestEnv) -> serde_json::Value {
    let out = ok(env, env.palisadectl(None, &["--json", "vm", "list"]));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    v.as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "work").cloned())
        .unwrap_or_default()
}

pub fn wait_state(env: &TestEnv, state: &str, limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let v = vm_state(env);
        if v["state"] == state {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "work never became {state}: {v}\n{}",
            env.helper_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One full ephemeral/update boot: start as `user`, wait for DONE, wait for the VM to be gone.
pub fn boot(env: &TestEnv, user: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["vm", "start", "work"];
    args.extend_from_slice(extra);
    ok(env, env.palisadectl(Some(user), &args));
    let lines = wait_console(env, "PALISADE-DONE", Duration::from_secs(120));
    wait_state(env, "shut down", Duration::from_secs(30));
    lines
}

pub fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

/// Whether the JSON holds the number `n` anywhere (a rule's port).
pub fn holds_number(v: &serde_json::Value, n: u16) -> bool {
    match v {
        serde_json::Value::Number(x) => x.as_u64() == Some(u64::from(n)),
        serde_json::Value::Array(items) => items.iter().any(|i| holds_number(i, n)),
        serde_json::Value::Object(map) => map.values().any(|i| holds_number(i, n)),
        _ => false,
    }
}

/// The port of the test's HTTP server.
pub const HTTP_PORT: u16 = 8470;

/// A Python HTTP server serving a folder on 127.0.0.1:[`HTTP_PORT`], as root in the test's
/// namespace; killed when dropped.
pub struct HttpServer(std::process::Child);

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(env: &TestEnv, dir: &std::path::Path) -> HttpServer {
    let server = HttpServer(
        env.spawn_http_server(HTTP_PORT, dir)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let probe = env.run_as(
            None,
            &[
                "python3".to_owned(),
                netcheck(env),
                "connect".into(),
                "127.0.0.1".into(),
                HTTP_PORT.to_string(),
            ],
        );
        if probe.status.success() {
            return server;
        }
        assert!(Instant::now() < deadline, "the HTTP server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The elements the kernel's set `set` of our table holds now, as `nft -j` lists them (call it
/// only for sets small enough to list: nft reads every element).
pub fn set_elements(env: &TestEnv, set: &str) -> Vec<serde_json::Value> {
    let out = env.nft(&["-j", "list", "set", "inet", "palisade", set]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .and_then(|items| items.iter().find_map(|i| i["set"]["elem"].as_array()))
        .cloned()
        .unwrap_or_default()
}

/// `palisadectl --json log follow` running as `user`: its lines as they come.
pub struct Follower {
    child: std::process::Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Follower {
    /// Starts following and waits until the helper has it as a follower.
    pub fn start(env: &TestEnv, user: &str, vm: Option<&str>) -> Self {
        let mut args = vec!["--json", "log", "follow"];
        if let Some(vm) = vm {
            args.extend(["--vm", vm]);
        }
        let mut child = spawn_palisadectl_piped(env, user, &args);
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(e) => panic!("not JSON from log follow: {e}: {line}"),
                }
            }
        });
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let mut first = String::new();
        let _ = BufReader::new(stderr).read_line(&mut first);
        assert!(
            first.starts_with("Following"),
            "log follow did not start: {first}"
        );
        Self { child, lines }
    }

    /// The first entry `wanted` accepts within `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(v) if wanted(&v) => return Some(v),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_palisadectl_piped(env: &TestEnv, user: &str, args: &[&str]) -> std::process::Child {
    let mut argv = vec![env
        .user_path(&env.bin_dir().join("palisadectl"))
        .to_string_lossy()
        .into_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    env.spawn_as(Some(user), &argv)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The counter of `vm`'s rule of `kind` (`numbered` with its first rule, or `default`).
pub fn rule_counter(env: &TestEnv, vm: &str, kind: &str, first: u64) -> serde_json::Value {
    let counters = json_out(env, ADMIN, &["log", "counters", "--vm", vm]);
    counters
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["rule"]["kind"] == kind && c["rule"]["first_rule"] == first)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {kind} counter {first} of {vm}: {counters}"))
}

pub fn json_out(env: &TestEnv, user: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(env, env.palisadectl(Some(user), &all));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// A connection held open by netcheck's `session` as `user` to 127.0.0.1:`port`: it exchanges
/// one message at once and another when told to, and says what became of each.
pub struct Session {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    go: PathBuf,
}

impl Session {
    /// Opens it; the first line says whether the first message was echoed ("one: echoed").
    pub fn open(env: &TestEnv, user: &str, port: u16) -> (Self, String) {
        let go = env.dir().join(format!("go-{port}"));
        let argv = vec![
            "python3".to_owned(),
            netcheck(env),
            "session".into(),
            "127.0.0.1".into(),
            port.to_string(),
            go.to_string_lossy().into_owned(),
        ];
        let mut child = env
            .spawn_as(Some(user), &argv)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut lines =
            BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout"))).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        (Self { child, lines, go }, first)
    }

    /// Sends the second message and ends the session: "two: echoed", or "two: cut ..." when the
    /// connection no longer works.
    pub fn second(mut self) -> String {
        std::fs::write(&self.go, b"").unwrap_or_else(|e| panic!("{e}"));
        let second = self.lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = self.child.wait();
        second
    }
}
