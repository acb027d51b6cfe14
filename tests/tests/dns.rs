//! Acceptance tests of the DNS-names issue: the helper's forwarder between a VM's user and a real
//! DNS server in the test's namespace, with every connection made for real as the VM's user.
//!
//! The lab (`palisade_tests::dns`): a DNS server in the test's namespace and an echo listener on
//! every address it hands out.

mod common;

use common::*;
use palisade_tests::dns::DnsLab;
use palisade_tests::{TestEnv, ALICE};
use serde_json::Value;
use std::time::{Duration, Instant};

const VM_USER: &str = "palisade-vm-work";

fn lab() -> DnsLab {
    DnsLab::start().unwrap_or_else(|e| panic!("cannot start the DNS lab: {e:#}"))
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
    probe_as(env, VM_USER, args)
}

fn probe_as(env: &TestEnv, user: &str, args: &[&str]) -> Value {
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/dns_probe.py"));
    let mut argv = vec!["python3".to_owned(), tool.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let out = env.run_as_timeout(Some(user), &argv, Duration::from_secs(600));
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
    // Floor 2 s: an answered address stays 3 s, so a probe the machine delays a moment
    // between answer and connection is not counted a miss; expiry is still seconds away.
    apply(env, &policy("", "", 2), &[]);
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
    // TTL 1 s, floor 2 s, grace 1 s: gone after 3 s (the kernel's timeout granularity aside).
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

#[test]
fn bad_questions_and_a_flood_from_one_vm_leave_the_forwarder_and_the_other_vm_alone() {
    let lab = lab();
    let env = &lab.env;
    let home = "\n[[vm]]\nname = \"home\"\ndns = true\ndefault = \"reject\"\n[[vm.rule]]\n\
                action = \"accept\"\ndestination = \"allowed.test\"\nproto = \"tcp\"\nports = 80\n";
    apply(env, &policy("", home, 60), &[]);
    let pid = env.helper_pid().unwrap_or(0);
    let header = "123401000001000000000000";
    let long_name: String = std::iter::repeat_n("3f", 300).collect();
    for (what, hex) in [
        ("garbage", "00".to_owned()),
        ("a header alone", header.to_owned()),
        ("a label running past the end", format!("{header}3f61")),
        (
            "a compression pointer to itself",
            format!("{header}c00c00010001"),
        ),
        (
            "a name longer than 255 bytes",
            format!("{header}{long_name}"),
        ),
        (
            "two questions",
            format!(
                "000701000002000000000000{0}{0}",
                "016100".to_owned() + "00010001"
            ),
        ),
        (
            "an update, not a query",
            "12342800000100000000000001610000010001".to_owned(),
        ),
    ] {
        for transport in ["udp", "tcp"] {
            let mut args = vec!["raw", hex.as_str()];
            if transport == "tcp" {
                args.push("--tcp");
            }
            let answer = probe(env, &args);
            // Dropped, or answered with an error code (FORMERR 1, NOTIMP 4): never a crash.
            if let Some(hex) = answer["answer"].as_str() {
                let code = u8::from_str_radix(&hex[7..8], 16).unwrap_or(0);
                assert!(matches!(code, 1 | 4), "{what} over {transport}: {answer}");
            }
        }
    }
    assert!(env.helper_pid().is_some(), "the helper is alive");
    let rss_before = palisade_tests::rss_kib(pid);
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/dns_probe.py"));
    let mut flood = env
        .spawn_as(
            Some(VM_USER),
            &["python3", &tool.to_string_lossy(), "flood", "20000"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let during = probe_as(env, "palisade-vm-home", &["rotate", "50", "80"]);
    let _ = flood.wait();
    assert_eq!(during["answers"], 50, "{during}");
    assert_eq!(during["misses"], Value::Array(Vec::new()), "{during}");
    let rss_after = palisade_tests::rss_kib(pid);
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    // The flooding VM itself is answered again once the flood is over.
    let after = resolve_and_connect(env, "allowed.test");
    assert_eq!(after["rcode"], "NOERROR", "{after}");
    assert_eq!(after["unreachable"], Value::Array(Vec::new()), "{after}");
}

#[test]
fn no_miss_while_a_million_entry_list_loads() {
    let lab = lab();
    let env = &lab.env;
    apply(env, &policy("", "", 60), &[]);
    let path = env.dir().join("million.netset");
    let mut list = String::with_capacity(17_000_000);
    for i in 0..1_000_000u32 {
        list.push_str(&format!(
            "{}.{}.{}.{}/28\n",
            11 + (i >> 19),
            (i >> 11) & 255,
            (i >> 3) & 255,
            (i & 7) * 32
        ));
    }
    std::fs::write(&path, list).unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    ok(
        env,
        env.palisadectl(
            Some(palisade_tests::ADMIN),
            &["blocklist", "import", "big", &path.to_string_lossy()],
        ),
    );
    let with_list = env
        .write_file(
            "with-list.toml",
            policy(
                "",
                "\n[[blocklist]]\nname = \"big\"\nimported = true\n\
                 [[host_rule]]\naction = \"drop\"\nblocklist = \"big\"\n",
                60,
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut applying = spawn_palisadectl(
        env,
        palisade_tests::ADMIN,
        &["policy", "apply", &with_list.to_string_lossy()],
    );
    let (mut answers, mut misses, mut rounds_during) = (0, Vec::new(), 0);
    loop {
        let done = matches!(applying.try_wait(), Ok(Some(_)));
        let run = probe(env, &["rotate", "50", "80"]);
        answers += run["answers"].as_u64().unwrap_or(0);
        misses.extend(run["misses"].as_array().cloned().unwrap_or_default());
        if done {
            break;
        }
        rounds_during += 1;
    }
    let status = applying.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "the apply naming the list failed");
    assert!(
        rounds_during >= 1,
        "the load ended before a question was asked"
    );
    assert!(answers >= 50 * rounds_during, "{answers} answers");
    assert!(misses.is_empty(), "{} misses: {misses:?}", misses.len());
}

/// Captures `filter` on `link` in the lab's namespace until dropped; `count` reads the capture.
struct Capture {
    child: std::process::Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(env: &TestEnv, link: &str, name: &str) -> Capture {
        let file = env.dir().join(name);
        let mut child = env
            .spawn_as(
                None,
                &[
                    "tcpdump",
                    "-i",
                    link,
                    "-n",
                    "-U",
                    "-w",
                    &file.to_string_lossy(),
                    "port 53 or port 853",
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let mut line = String::new();
        if let Some(err) = child.stderr.take() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(err).read_line(&mut line);
        }
        assert!(line.contains("listening on"), "tcpdump: {line}");
        Capture { child, file }
    }

    /// Stops the capture; the number of packets on each port.
    fn stop(mut self, env: &TestEnv) -> (usize, usize) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        let count = |port: &str| {
            let out = env.run_as(
                None,
                &[
                    "tcpdump",
                    "-r",
                    &self.file.to_string_lossy(),
                    "-n",
                    "port",
                    port,
                ],
            );
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        (count("53"), count("853"))
    }
}

#[test]
fn dns_over_tls_leaves_no_plaintext_on_the_link_and_a_wrong_certificate_fails_closed() {
    let lab = lab();
    let env = &lab.env;
    let upstream = palisade_tests::dns::TlsUpstream::start(&lab)
        .unwrap_or_else(|e| panic!("cannot start the TLS upstream: {e:#}"));
    let tls = |name: &str| {
        format!(
            "upstream = \"tls\"\nserver = \"10.99.0.2:853\"\ntls_name = \"{name}\"\ntls_ca = \"{}\"\n",
            upstream.ca.display()
        )
    };
    // This test is about the link, not expiry: a generous floor keeps a busy machine's late
    // connection from counting as a miss.
    apply(env, &policy("", &tls("dns.test"), 5), &[]);
    let capture = Capture::start(env, &upstream.link, "tls.pcap");
    let run = probe(env, &["rotate", "1000", "80"]);
    let summary = format!(
        "answers {}, misses {}, failed lookups {} {}",
        run["answers"], run["misses"], run["failed_lookups"], run["failures"]
    );
    assert_eq!(run["answers"], 1000, "{summary}");
    assert_eq!(run["misses"], Value::Array(Vec::new()), "{summary}");
    let (plain, tls_packets) = capture.stop(env);
    assert_eq!(plain, 0, "plaintext DNS crossed the link");
    assert!(tls_packets > 0, "the capture saw no DNS over TLS either");

    // A certificate that does not name the configured server: lookups fail, and say why.
    apply(env, &policy("", &tls("wrong.test"), 1), &[]);
    let capture = Capture::start(env, &upstream.link, "wrong.pcap");
    let failed = resolve(env, "allowed.test");
    assert_eq!(failed["rcode"], "SERVFAIL", "{failed}");
    let (plain, _) = capture.stop(env);
    assert_eq!(plain, 0, "a failing TLS upstream fell back to plaintext");
    let log = palisade_json(env, &["dns", "log", "--vm", "work"]);
    let last = log
        .as_array()
        .and_then(|l| l.iter().rev().find(|e| e["name"] == "allowed.test"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(last["outcome"], "failed", "{last}");
    assert!(
        last["detail"]
            .as_str()
            .unwrap_or("")
            .contains("certificate"),
        "{last}"
    );
}

#[test]
fn the_tiny_guest_resolves_through_slirp_and_reaches_only_what_its_rules_name() {
    let lab = lab();
    let env = &lab.env;
    create_work(env, "");
    let guest = format!(
        r#"
[settings]
accel = "tcg"
[settings.dns]
ttl_floor_seconds = 60

[[vm]]
name = "work"
memory = 256
cpus = 1
kernel = "vmlinuz"
initrd = "initrd.img"
cmdline = "console=ttyS0 quiet pal.resolve=allowed.test:80,other.test:80"
operators = {{ users = ["{ALICE}"] }}
dns = true
default = "reject"

[[vm.rule]]
action = "accept"
destination = "allowed.test"
proto = "tcp"
ports = 80
"#
    );
    apply(env, &guest, &[]);
    let lines = boot(env, ALICE, &[]);
    let result = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("PALISADE-RESULT resolve {name} ")))
            .cloned()
            .unwrap_or_default()
    };
    let allowed = result("allowed.test");
    assert!(
        allowed.starts_with("PALISADE-RESULT resolve allowed.test 10.77.")
            && allowed.ends_with(" ok"),
        "{lines:?}"
    );
    assert_eq!(
        result("other.test"),
        "PALISADE-RESULT resolve other.test 10.81.0.1 fail",
        "{lines:?}"
    );
    // The guest's lookups went through the forwarder, as VM work.
    let log = palisade_json(env, &["dns", "log", "--vm", "work"]);
    let admitted = log
        .as_array()
        .map(|l| {
            l.iter()
                .any(|e| e["name"] == "allowed.test" && e["outcome"] == "admitted")
        })
        .unwrap_or(false);
    assert!(admitted, "{log}");
}

/// The addresses a set of our table holds now (a small set: listing it is quick).
fn set_addresses(env: &TestEnv, set: &str) -> Vec<String> {
    set_elements(env, set)
        .iter()
        .filter_map(|e| {
            e.as_str()
                .or_else(|| e["elem"]["val"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// Host names no guest asks for are resolved by the helper through the forwarder's upstream and
/// asked again as their TTLs run out: a host-wide rule's set follows a name whose address
/// changes on every answer (new addresses come in and refused, old ones leave), a remote
/// console reached by name is guarded at its address, and a name that never answers degrades
/// only its own rule.
#[test]
fn host_wide_names_and_remote_consoles_follow_their_answers_by_ttl() {
    let lab = lab();
    let env = &lab.env;
    let _console = listen_on(env, "0.0.0.0", 5999);
    // Before any policy: the console host's address is anyone's to reach.
    assert!(connects_to_host(
        env,
        palisade_tests::BOB,
        "10.81.0.1",
        5999
    ));
    let doc = r#"
[[host_rule]]
action = "reject"
destination = "allowed.test"
proto = "tcp"
ports = 80

[[host_rule]]
action = "reject"
destination = "broken.test"

[[remote_console]]
name = "server"
host = "other.test"
port = 5999
users = ["pal-alice"]

[settings.dns]
ttl_floor_seconds = 2
grace_seconds = 1
"#;
    apply(env, doc, &[]);
    // Resolved at install: the first address the server handed out is in the set and refused.
    let first = set_addresses(env, "host_r1_v4");
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        !connects_to_host(env, ALICE, &first[0], 80),
        "{} is in the host rule's set but connects",
        first[0]
    );
    // Asked again every 2 s (TTL 1 s, floor 2 s), each answer a new address kept 3 s: the set
    // takes the new addresses in, and the first one leaves.
    let mut seen: std::collections::BTreeSet<String> = first.iter().cloned().collect();
    let started = Instant::now();
    loop {
        let now = set_addresses(env, "host_r1_v4");
        seen.extend(now.iter().cloned());
        if seen.len() >= 4 && !now.contains(&first[0]) && !now.is_empty() {
            let current = &now[now.len() - 1];
            assert!(
                !connects_to_host(env, ALICE, current, 80),
                "{current} was answered to the helper but connects"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the host rule's set did not follow its name: seen {seen:?}, now {now:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // An address the name never answered is not refused.
    assert!(connects_to_host(env, ALICE, "10.77.250.1", 80));
    // The remote console by name: guarded at the address its name answers.
    assert!(
        connects_to_host(env, ALICE, "10.81.0.1", 5999),
        "the console's user is refused"
    );
    assert!(
        !connects_to_host(env, palisade_tests::BOB, "10.81.0.1", 5999),
        "another user reaches the remote console"
    );
    // broken.test never answers: its rule alone says so, and the log shows the refreshes.
    let started = Instant::now();
    loop {
        let status = palisade_json(env, &["status"]);
        let names = status["dns_names"].as_array().cloned().unwrap_or_default();
        let problem = |pattern: &str| {
            names
                .iter()
                .find(|n| n["vm"] == "host" && n["pattern"] == pattern)
                .map(|n| n["problem"].as_str().unwrap_or_default().to_owned())
        };
        if problem("broken.test").is_some_and(|p| !p.is_empty()) {
            assert_eq!(problem("allowed.test").as_deref(), Some(""), "{status}");
            assert_eq!(problem("other.test").as_deref(), Some(""), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "broken.test's problem is not reported: {status}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let log = palisade_json(env, &["dns", "log"]);
    assert!(
        log.as_array()
            .is_some_and(|l| l.iter().any(|e| e["vm"] == "host"
                && e["name"] == "allowed.test"
                && e["outcome"] == "admitted")),
        "{log}"
    );
}
