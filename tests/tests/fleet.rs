//! Issue 15's acceptance on one host: the policy merged from vendor and admin drop-ins and the
//! local policy, conflicts refused naming both files, `check --candidate`, the path watch and
//! `reload`, drift, an open connection kept across a reload, and the Prometheus textfile. (The
//! Ansible collection against two hosts is `fleet_ansible.rs`.)

mod common;

use common::*;
use palisade_tests::{TestEnv, ADMIN};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("{e:#}"))
}

/// `palisadectl --json ARGS` as root, parsed; panics unless it succeeded.
fn ctl(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let mut argv = vec!["--json"];
    argv.extend_from_slice(args);
    let out = ok(env, env.palisadectl(None, &argv));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn status(env: &TestEnv) -> serde_json::Value {
    ctl(env, &["status"])
}

fn drop_in_dir(dir: &Path) -> PathBuf {
    let d = dir.join("policy.d");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

/// Writes a drop-in the way configuration management does: a temporary dotfile renamed over it.
fn put(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until the live generation is past `after` (the path watch's reload), and returns it.
fn wait_generation_past(env: &TestEnv, after: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let g = generation(env);
        if g > after {
            return g;
        }
        assert!(
            Instant::now() < deadline,
            "no new generation after {after} within 15 s\n{}",
            env.helper_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lab(port: u16) -> String {
    format!(
        "[[vm]]\nname = \"lab\"\ndefault = \"drop\"\n\n[[vm.rule]]\naction = \"accept\"\n\
         destination = \"127.0.0.1\"\nproto = \"tcp\"\nports = {port}\n"
    )
}

#[test]
fn drop_ins_merge_replace_conflict_and_drift_as_documented() {
    let env = start();
    let vendor = drop_in_dir(env.vendor_dir());
    let admin = drop_in_dir(env.config_dir());
    put(&vendor, "20-office.toml", &lab(8443));
    put(
        &admin,
        "10-hosts.toml",
        "[[host_rule]]\naction = \"reject\"\ndestination = \"192.0.2.7\"\ncomment = \"from 10-hosts\"\n",
    );
    let r = ctl(&env, &["policy", "reload"]);
    assert_eq!(r["changed"], true, "{r}");
    let first = r["applied"]["generation"].as_u64().unwrap_or(0);
    let s = status(&env);
    assert_eq!(s["generation"].as_u64(), Some(first), "{s}");
    assert_eq!(s["source"], "drop-ins", "{s}");
    assert_eq!(s["drift"], "in sync", "{s}");
    assert_eq!(s["vms"], 1, "{s}");
    assert_eq!(s["policy_hash"].as_str().map(str::len), Some(64), "{s}");
    // Two drop-ins and the (empty) local policy, in merge order.
    let sources = ctl(&env, &["policy", "sources"]);
    let listed: Vec<(String, String)> = sources["sources"]
        .as_array()
        .unwrap_or_else(|| panic!("{sources}"))
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("10-hosts.toml".to_owned(), "admin".to_owned()),
            ("20-office.toml".into(), "vendor".into()),
            ("policy.toml".into(), "local".into())
        ]
    );
    assert_eq!(sources["admin_dir"], admin.to_string_lossy().as_ref());
    let merged = ctl(&env, &["policy", "show", "--merged"]);
    let doc = merged["document"].as_str().unwrap_or_default();
    assert!(
        doc.contains("from 10-hosts") && doc.contains("\"lab\""),
        "{doc}"
    );
    // Enforced for real: the VM's user reaches 8443 and not 8444.
    let _listener = listen(&env, &[8443, 8444]);
    assert!(connects(&env, "palisade-vm-lab", 8443));
    assert!(!connects(&env, "palisade-vm-lab", 8444));

    // A same-named file in /etc replaces the vendor's; the watch applies it by itself.
    put(&admin, "20-office.toml", &lab(8444));
    let second = wait_generation_past(&env, first);
    let sources = ctl(&env, &["policy", "sources"]);
    let office = sources["sources"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "20-office.toml").cloned())
        .unwrap_or_else(|| panic!("{sources}"));
    assert_eq!(office["kind"], "admin", "{sources}");
    assert!(connects(&env, "palisade-vm-lab", 8444));
    assert!(!connects(&env, "palisade-vm-lab", 8443));

    // The local policy defining the same VM is refused naming both files; nothing changes.
    let file = env
        .write_file("local.toml", lab(9000))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = env.palisadectl(
        Some(ADMIN),
        &["policy", "apply", file.to_string_lossy().as_ref()],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(65), "{said}");
    assert!(
        said.contains("20-office.toml") && said.contains("policy.toml") && said.contains("`lab`"),
        "{said}"
    );
    assert_eq!(generation(&env), second);

    // check --candidate: a bad candidate is caught before it is installed, naming it.
    let bad = env
        .write_file("candidate.toml", "[[vm]]\nname = \"web\"\n[[vm.rule]]\naction = \"accept\"\nproto = \"tcp\"\nports = 70000\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let bad = bad.to_string_lossy().into_owned();
    let out = env.palisadectl(
        None,
        &[
            "--json",
            "policy",
            "check",
            "--candidate",
            &bad,
            "--as",
            "30-web.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(report["valid"], false, "{report}");
    assert!(
        report["findings"].to_string().contains("(in 30-web.toml)"),
        "{report}"
    );
    // A candidate that would define the VM a vendor file has is refused naming both.
    let twice = env
        .write_file("twice.toml", lab(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = env.palisadectl(
        None,
        &[
            "--json",
            "policy",
            "check",
            "--candidate",
            twice.to_string_lossy().as_ref(),
            "--as",
            "40-twice.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    assert!(text(&out).contains("20-office.toml") && text(&out).contains("40-twice.toml"));
    // A good one is valid and says what would change, and nothing did.
    let good = env
        .write_file(
            "good.toml",
            "[[host_rule]]\naction = \"reject\"\ndestination = \"192.0.2.99\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let report = ctl(
        &env,
        &[
            "policy",
            "check",
            "--candidate",
            good.to_string_lossy().as_ref(),
            "--as",
            "30-web.toml",
        ],
    );
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["changes"], true, "{report}");
    assert!(
        report["ruleset_diff"]
            .as_str()
            .unwrap_or_default()
            .contains("192.0.2.99"),
        "{report}"
    );
    assert!(!admin.join("30-web.toml").exists());
    assert_eq!(generation(&env), second);
    // The file that is in place already: valid, no change.
    let same = env
        .write_file("same.toml", lab(8444))
        .unwrap_or_else(|e| panic!("{e}"));
    let report = ctl(
        &env,
        &[
            "policy",
            "check",
            "--candidate",
            same.to_string_lossy().as_ref(),
            "--as",
            "20-office.toml",
        ],
    );
    assert_eq!(
        (report["valid"].clone(), report["changes"].clone()),
        (true.into(), false.into()),
        "{report}"
    );

    // Rolling back past the drop-ins is drift until they are reloaded.
    ctl(&env, &["policy", "rollback", &first.to_string()]);
    let s = status(&env);
    assert_eq!(s["drift"], "drifted", "{s}");
    assert!(
        connects(&env, "palisade-vm-lab", 8443),
        "the rollback brought 8443 back"
    );
    let r = ctl(&env, &["policy", "reload"]);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(status(&env)["drift"], "in sync");
    let r = ctl(&env, &["policy", "reload"]);
    assert_eq!(r["changed"], false, "a second reload is a no-op: {r}");
    // History names who made each generation.
    let history = ctl(&env, &["policy", "history"]);
    let sources: Vec<&str> = history
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .filter_map(|g| g["source"].as_str())
        .collect();
    assert!(
        sources.starts_with(&["drop-ins", "palisadectl", "drop-ins"]),
        "{history}"
    );
    // A broken drop-in is not applied; status says so and names it. Removing it heals.
    put(&admin, "50-broken.toml", "[[vm]\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(&env);
        if s["drift"] == "unreadable" {
            assert!(
                s["problem"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("50-broken.toml"),
                "{s}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no drift reported: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(Some(generation(&env)), history[0]["generation"].as_u64());
    std::fs::remove_file(admin.join("50-broken.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status(&env)["drift"], "in sync");
    let last = history[0]["generation"].as_u64();
    assert_eq!(
        Some(generation(&env)),
        last,
        "the broken file changed nothing live"
    );
}

#[test]
fn a_drop_in_reload_keeps_an_open_connection_the_new_policy_still_allows() {
    let env = start();
    let admin = drop_in_dir(env.config_dir());
    put(&admin, "50-work.toml", &work_policy(8443));
    ctl(&env, &["policy", "reload"]);
    let before = generation(&env);
    let _listener = listen(&env, &[8443]);
    let (session, first) = Session::open(&env, "palisade-vm-work", 8443);
    assert_eq!(first, "one: echoed");
    // Another rule joins; the open connection is still allowed.
    let more = format!(
        "{}\n[[vm.rule]]\naction = \"accept\"\ndestination = \"127.0.0.1\"\nproto = \"tcp\"\nports = 9999\n",
        work_policy(8443)
    );
    put(&admin, "50-work.toml", &more);
    wait_generation_past(&env, before);
    assert!(
        table_raw(&env).contains("9999"),
        "the new rule is not in the table"
    );
    let second = session.second();
    assert_eq!(second, "two: echoed", "the open connection did not survive");
}

/// One sample of a metrics file: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A minimal reader of Prometheus' text exposition format (0.0.4): every sample's metric was
/// given a TYPE first, names and labels are well formed, values are numbers. Returns each
/// sample as (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed = std::collections::HashMap::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "the file must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(name_ok(name), "{line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    assert!(
                        typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                (Some("HELP"), Some(name), Some(_)) => assert!(name_ok(name), "{line}"),
                _ => {}
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(name_ok(&key), "label name in {line}");
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some('n') => value.push('\n'),
                                Some(c @ ('\\' | '"')) => value.push(c),
                                other => panic!("bad escape {other:?} in {line}"),
                            },
                            Some('"') => break,
                            Some(c) => value.push(c),
                            None => panic!("unterminated label value in {line}"),
                        }
                    }
                    labels.push((key, value));
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name, labels)
            }
        };
        assert!(name_ok(name), "{line}");
        assert!(typed.contains_key(name), "sample before its TYPE: {line}");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

fn sample(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name && label.is_none_or(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.2)
}

#[test]
fn the_metrics_file_parses_and_matches_status() {
    let env = start();
    let metrics = env.dir().join("metrics");
    std::fs::create_dir(&metrics).unwrap_or_else(|e| panic!("{e}"));
    let file = metrics.join("palisade.prom");
    let policy = format!(
        "{}\n[settings.metrics]\ntextfile = \"{}\"\n",
        work_policy(8443),
        file.display()
    );
    apply(&env, &policy, &[]);
    // A refused connection counts as a drop of VM work.
    assert!(!connects(&env, "palisade-vm-work", 8444));
    let read = || -> Option<Vec<Sample>> {
        let text = std::fs::read_to_string(&file).ok()?;
        Some(parse_prometheus(&text))
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let samples = loop {
        if let Some(s) = read() {
            if sample(&s, "palisade_dropped_packets_total", Some(("vm", "work")))
                .is_some_and(|n| n >= 1.0)
            {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no drop in {}:\n{:?}",
            file.display(),
            std::fs::read_to_string(&file)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let s = status(&env);
    let number = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}")) as f64;
    assert_eq!(
        sample(&samples, "palisade_generation", None),
        Some(number("generation"))
    );
    assert_eq!(
        sample(&samples, "palisade_last_apply_timestamp_seconds", None),
        Some(number("applied_at"))
    );
    assert_eq!(
        sample(&samples, "palisade_confirmation_pending", None),
        Some(0.0)
    );
    assert_eq!(sample(&samples, "palisade_policy_drift", None), Some(0.0));
    let hash = s["policy_hash"].as_str().unwrap_or_default();
    assert_eq!(
        sample(&samples, "palisade_policy_info", Some(("hash", hash))),
        Some(1.0),
        "{samples:?} vs {s}"
    );
    assert_eq!(
        sample(
            &samples,
            "palisade_policy_info",
            Some(("source", "palisadectl"))
        ),
        Some(1.0)
    );
    let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o644
    );
    // A pending generation shows at once, without waiting for the 15 s refresh.
    let generation = apply(&env, &policy.replace("8443", "8445"), &["--confirm", "120"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = read().unwrap_or_default();
        if sample(&s, "palisade_generation", None) == Some(generation as f64) {
            assert_eq!(sample(&s, "palisade_confirmation_pending", None), Some(1.0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file did not follow generation {generation}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn drop_ins_changed_while_the_helper_was_stopped_are_adopted_at_start_and_bad_ones_refused() {
    let mut env = start();
    apply(&env, &work_policy(8443), &[]);
    let before = generation(&env);
    env.stop_helper();
    let admin = drop_in_dir(env.config_dir());
    put(&admin, "50-lab.toml", &lab(8444));
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let s = status(&env);
    assert_eq!(s["generation"].as_u64(), Some(before + 1), "{s}");
    assert_eq!(s["source"], "boot", "{s}");
    assert_eq!(s["vms"], 2, "the local VM and the drop-in's: {s}");
    assert_eq!(s["drift"], "in sync", "{s}");
    // The local policy stays the one that was applied; the drop-in is not copied into it.
    let shown = ctl(&env, &["policy", "show"]);
    assert!(
        !shown["document"]
            .as_str()
            .unwrap_or_default()
            .contains("\"lab\""),
        "{shown}"
    );
    // A drop-in that clashes with the local policy is refused at start: the last confirmed
    // generation stays and status says why, naming both files.
    env.stop_helper();
    put(&admin, "60-clash.toml", &work_policy(9000));
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let s = status(&env);
    assert_eq!(s["generation"].as_u64(), Some(before + 1), "{s}");
    let problem = s["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("60-clash.toml") && problem.contains("policy.toml"),
        "{s}"
    );
    assert_ne!(s["drift"], "in sync", "{s}");
}

#[test]
fn the_watch_can_be_left_to_explicit_reloads_or_apply_with_a_confirmation_window() {
    let env = start();
    let local =
        |settings: &str| format!("{}\n[settings.drop_ins]\n{settings}\n", work_policy(8443));
    let base = apply(&env, &local("watch = false"), &[]);
    let admin = drop_in_dir(env.config_dir());
    put(&admin, "50-lab.toml", &lab(8444));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !env.helper_log().contains("watch = false") {
        assert!(
            Instant::now() < deadline,
            "the watch did not see the drop-in\n{}",
            env.helper_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = status(&env);
    assert_eq!(
        s["generation"].as_u64(),
        Some(base),
        "the watch applied: {s}"
    );
    assert_eq!(s["drift"], "drifted", "{s}");
    // Configuration management's own reload, with its window.
    let r = ctl(&env, &["policy", "reload", "--confirm", "120"]);
    let pending = r["applied"]["generation"].as_u64().unwrap_or(0);
    assert!(
        r["applied"]["pending_until"].as_u64().unwrap_or(0) > 0,
        "{r}"
    );
    // Another reload while it is pending is refused (exit 75), not stacked on it.
    let out = env.palisadectl(None, &["policy", "reload"]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    ctl(&env, &["policy", "confirm", &pending.to_string()]);
    // With the watch on and a window, the watch's own reload waits for confirmation.
    let on = apply(&env, &local("watch = true\nconfirm_seconds = 120"), &[]);
    put(
        &admin,
        "60-more.toml",
        "[[host_rule]]\naction = \"reject\"\ndestination = \"192.0.2.8\"\n",
    );
    let watched = wait_generation_past(&env, on);
    let s = status(&env);
    assert_eq!(s["source"], "drop-ins", "{s}");
    assert!(s["pending_until"].as_u64().unwrap_or(0) > 0, "{s}");
    ctl(&env, &["policy", "confirm", &watched.to_string()]);
    assert_eq!(status(&env)["pending_until"], 0);
}
