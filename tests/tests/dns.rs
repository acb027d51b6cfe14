//! Acceptance tests of the DNS-names issue: the helper's forwarder between a VM's user and a real
//! DNS server in the test's namespace, with every connection made for real as the VM's user.
//!
//! The namespace gets a DNS server on 10.53.0.53 and 10.53.0.99 (`tests/tools/dns_server.py`),
//! `/etc/resolv.conf` naming 10.53.0.53 (for the helper and everything started after it), and
//! 10.64.0.0/10 routed locally with an echo listener on port 80, so every address the server
//! hands out can be connected to — if the firewall lets the connection out.

mod common;

use common::*;
use palisade_tests::TestEnv;
use serde_json::Value;
use std::time::{Duration, Instant};

const VM_USER: &str = "palisade-vm-work";
const PORT: u16 = 80;

struct DnsLab {
    env: TestEnv,
    _server: Listener,
    _echo: Listener,
}

fn lab() -> DnsLab {
    let mut env = TestEnv::start_without_helper()
        .unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    let etc = env.netns_etc_dir();
    std::fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(etc.join("resolv.conf"), "nameserver 10.53.0.53\n")
        .unwrap_or_else(|e| panic!("{e}"));
    for argv in [
        &["ip", "addr", "add", "10.53.0.53/32", "dev", "lo"][..],
        &["ip", "addr", "add", "10.53.0.99/32", "dev", "lo"],
        &["ip", "route", "add", "local", "10.64.0.0/10", "dev", "lo"],
    ] {
        ok(&env, env.run_as(None, argv));
    }
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/dns_server.py"));
    let server = ready_listener(
        &env,
        &[
            "python3".to_owned(),
            tool.to_string_lossy().into_owned(),
            "10.53.0.53".into(),
            "10.53.0.99".into(),
        ],
    );
    let echo = listen_on(&env, "0.0.0.0", PORT);
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    DnsLab {
        env,
        _server: server,
        _echo: echo,
    }
}

/// The lab's policy; answers stay admitted max(TTL 1 s, `floor`) + 1 s.
fn policy(extra_vm: &str, extra: &str, floor: u32) -> String {
    format!(
        r#"
[[vm]]
name = "work"
dns = true
default = "reject"
{extra_vm}
[[vm.rule]]
action = "accept"
destination = "allowed.test"
proto = "tcp"
ports = 80
[[vm.rule]]
action = "accept"
destination = "*.corp.test"
proto = "tcp"
ports = 80
[[vm.rule]]
action = "accept"
destination = "alias.test"
proto = "tcp"
ports = 80
[[vm.rule]]
action = "accept"
destination = "big.test"
proto = "tcp"
ports = 80
[[vm.rule]]
action = "accept"
destination = "broken.test"
proto = "tcp"
ports = 80

[settings.dns]
ttl_floor_seconds = {floor}
grace_seconds = 1
{extra}
"#
    )
}

fn probe(env: &TestEnv, args: &[&str]) -> Value {
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/dns_probe.py"));
    let mut argv = vec!["python3".to_owned(), tool.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let out = env.run_as_timeout(Some(VM_USER), &argv, Duration::from_secs(600));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn resolve(env: &TestEnv, name: &str) -> Value {
    probe(env, &["resolve", name])
}

/// Resolves `name` and connects to every answered address straight away.
fn resolve_and_connect(env: &TestEnv, name: &str) -> Value {
    probe(env, &["resolve", name, "--connect", "80"])
}

fn reaches(env: &TestEnv, addr: &str) -> bool {
    probe(env, &["connect", addr, "80"])["connected"] == Value::Bool(true)
}

fn addresses(v: &Value) -> Vec<String> {
    v["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_answered_address_is_reachable_at_once_and_leaves_after_its_ttl() {
    let lab = lab();
    let env = &lab.env;
    apply(env, &policy("", "", 1), &[]);
    // Nothing was answered yet: the first address the server will hand out is refused.
    assert!(!reaches(env, "10.77.0.1"));
    let run = probe(env, &["rotate", "1000", "80"]);
    let seen = addresses(&run);
    let summary = format!(
        "answers {}, misses {}, failed lookups {} {}",
        run["answers"], run["misses"], run["failed_lookups"], run["failures"]
    );
    assert_eq!(run["answers"], 1000, "{summary}");
    assert_eq!(run["misses"], Value::Array(Vec::new()), "{summary}");
    assert_eq!(seen.len(), 1000, "every answer a new address: {summary}");
    // An address the server has not handed out yet was never admitted.
    let next = resolve(env, "other.test");
    assert_eq!(addresses(&next), vec!["10.81.0.1".to_string()]);
    assert!(!reaches(env, "10.77.200.1"), "an address never answered");
    assert!(!reaches(env, "10.81.0.1"), "other.test is no rule's name");
    // TTL 1 s, floor 1 s, grace 1 s: gone after 2 s (the kernel's timeout granularity aside).
    let last = seen.last().cloned().unwrap_or_default();
    let started = Instant::now();
    while reaches(env, &last) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{last} stayed admitted"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(!reaches(env, &seen[0]));
}

#[test]
fn wildcards_cnames_truncated_answers_and_no_other_resolver() {
    let lab = lab();
    let env = &lab.env;
    apply(env, &policy("", "", 60), &[]);
    for name in ["a.corp.test", "b.x.corp.test"] {
        let r = resolve_and_connect(env, name);
        assert_eq!(addresses(&r).len(), 1, "{name}: {r}");
        assert_eq!(r["unreachable"], Value::Array(Vec::new()), "{name}: {r}");
    }
    for name in ["corp.test", "corp.test.evil.test"] {
        let r = resolve(env, name);
        let a = addresses(&r);
        assert_eq!(a.len(), 1, "{name}: {r}");
        assert!(!reaches(env, &a[0]), "{name} ({}) is not admitted", a[0]);
    }
    // A CNAME from the allowed name: the final address counts.
    let alias = resolve_and_connect(env, "alias.test");
    assert_eq!(addresses(&alias), vec!["10.79.0.1".to_string()], "{alias}");
    assert_eq!(alias["unreachable"], Value::Array(Vec::new()), "{alias}");
    // Too big for UDP: truncated, asked again over TCP, and all 40 addresses admitted.
    let big = resolve_and_connect(env, "big.test");
    assert_eq!(big["tcp"], Value::Bool(true), "{big}");
    assert_eq!(addresses(&big).len(), 40, "{big}");
    assert_eq!(big["unreachable"], Value::Array(Vec::new()), "{big}");
    // Another resolver on 53 is the forwarder all the same (10.53.0.99 answers everything
    // itself, but the question never reaches it), and 853 is refused.
    let direct = probe(env, &["resolve", "alias.test", "--server", "10.53.0.99"]);
    assert_eq!(direct["rcode"], "NOERROR", "{direct}");
    let log = palisade_json(env, &["dns", "log", "--vm", "work"]);
    let asked_99 = log
        .as_array()
        .map(|events| events.iter().filter(|e| e["name"] == "alias.test").count())
        .unwrap_or(0);
    assert_eq!(
        asked_99, 2,
        "both alias.test questions passed the forwarder: {log}"
    );
    let dot = probe(env, &["connect", "10.53.0.99", "853"]);
    assert_eq!(dot["connected"], Value::Bool(false), "{dot}");
    assert!(
        dot["why"].as_str().unwrap_or("").contains("refused"),
        "{dot}"
    );
    // Browsers' canary for automatic DNS over HTTPS.
    assert_eq!(resolve(env, "use-application-dns.net")["rcode"], "NXDOMAIN");
}

#[test]
fn strict_mode_and_domain_lists_refuse_names_and_a_failing_name_degrades_only_its_rule() {
    let lab = lab();
    let env = &lab.env;
    let list = env
        .write_file("ads.txt", "blocked.test\n")
        .unwrap_or_else(|e| panic!("{e}"));
    ok(
        env,
        env.palisadectl(
            Some(palisade_tests::ADMIN),
            &[
                "blocklist",
                "import",
                "ads",
                &list.to_string_lossy(),
                "--format",
                "domains",
            ],
        ),
    );
    let extra_vm = "strict_dns = true\n[[vm.rule]]\naction = \"drop\"\nblocklist = \"ads\"\n";
    let lists = "\n[[blocklist]]\nname = \"ads\"\nimported = true\n";
    apply(env, &policy(extra_vm, lists, 60), &[]);
    assert_eq!(resolve(env, "ads.blocked.test")["rcode"], "NXDOMAIN");
    assert_eq!(resolve(env, "other.test")["rcode"], "REFUSED");
    // broken.test's server never answers: that name fails, and only its rule says so.
    assert_eq!(resolve(env, "broken.test")["rcode"], "SERVFAIL");
    let allowed = resolve_and_connect(env, "allowed.test");
    assert_eq!(addresses(&allowed).len(), 1, "{allowed}");
    assert_eq!(
        allowed["unreachable"],
        Value::Array(Vec::new()),
        "{allowed}"
    );
    let status = palisade_json(env, &["status"]);
    let names = status["dns_names"].as_array().cloned().unwrap_or_default();
    let broken: Vec<&Value> = names
        .iter()
        .filter(|n| n["problem"].as_str().is_some_and(|p| !p.is_empty()))
        .collect();
    assert_eq!(broken.len(), 1, "{status}");
    assert_eq!(broken[0]["pattern"], "broken.test", "{status}");
    let log = palisade_json(env, &["dns", "log", "--vm", "work"]);
    let outcome = |name: &str| {
        log.as_array()
            .and_then(|l| l.iter().rev().find(|e| e["name"] == name))
            .map(|e| e["outcome"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(outcome("ads.blocked.test"), "blocked", "{log}");
    assert_eq!(outcome("other.test"), "refused", "{log}");
    assert_eq!(outcome("allowed.test"), "admitted", "{log}");
}

fn palisade_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut argv = vec!["--json"];
    argv.extend_from_slice(args);
    let out = ok(env, env.palisadectl(Some(palisade_tests::ADMIN), &argv));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}
