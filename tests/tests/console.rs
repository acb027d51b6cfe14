//! Acceptance tests of the Consoles issue: per-user Spice access enforced by the kernel, one-time
//! tickets checked by a real Spice link handshake, the console client role, a real viewer.

mod common;

use common::*;
use palisade_tests::{vm_policy_with, TestEnv, ADMIN, ALICE, BOB};
use std::process::Output;
use std::time::{Duration, Instant};

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

/// Starts VM `work` (staying up) as alice, with `settings` added to the policy.
fn running_work(env: &TestEnv, settings: &str, tail: &str) {
    create_work(env, "pal.stay=1");
    apply(
        env,
        &vm_policy_with("pal.stay=1", "\"pal-alice\"", settings, tail),
        &[],
    );
    ok(env, env.palisadectl(Some(ALICE), &["vm", "start", "work"]));
    wait_state(env, "running", Duration::from_secs(10));
}

fn ticket(env: &TestEnv, user: &str) -> serde_json::Value {
    let out = ok(
        env,
        env.palisadectl(
            Some(user),
            &["--json", "console", "open", "work", "--print-vv"],
        ),
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// One Spice link handshake (tests/tools/spice_link.py) as `user`; its one-line verdict.
fn spice_link(env: &TestEnv, user: &str, port: u64, password: &str) -> String {
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/spice_link.py"));
    let out: Output = env.run_as(
        Some(user),
        &[
            "/usr/bin/python3",
            &tool.to_string_lossy(),
            "127.0.0.1",
            &port.to_string(),
            password,
            "--timeout",
            "5",
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn an_assigned_user_links_with_a_ticket_and_the_kernel_stops_everyone_else() {
    let env = start();
    running_work(&env, "", "");
    let t = ticket(&env, ALICE);
    let (port, password) = (
        t["port"].as_u64().unwrap_or(0),
        t["password"].as_str().unwrap_or("").to_owned(),
    );
    assert!(port >= 5900 && password.len() >= 32, "{t}");
    assert_eq!(spice_link(&env, ALICE, port, &password), "ok");

    let refused_before = counter(&env, "output", "console access");
    let bob = spice_link(&env, BOB, port, &password);
    assert!(
        bob.starts_with("refused"),
        "bob got through the kernel with alice's password: {bob}"
    );
    assert!(
        counter(&env, "output", "console access") > refused_before,
        "the refusal was not counted"
    );

    let out = env.palisadectl(Some(BOB), &["console", "open", "work"]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    // polkit lets admins open consoles, but work's console is assigned to alice alone.
    let out = env.palisadectl(Some(ADMIN), &["console", "open", "work"]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not open the console of work"),
        "{}",
        text(&out)
    );
    let listed = ok(&env, env.palisadectl(Some(ALICE), &["console", "list"]));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("work"));

    // Opening for real writes a 0600 .vv file and passes only its path to the viewer.
    let record = env.dir().join("viewer");
    std::fs::create_dir(&record).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(
        &record,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let recorder = record.join("viewer.sh");
    std::fs::write(&recorder, format!("#!/bin/sh\nstat -c %a \"$1\" > {0}/mode\ncat \"$1\" > {0}/vv\necho \"$@\" > {0}/argv\nrm -f \"$1\"\n", record.display()))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(
        &recorder,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let viewer = format!("PALISADE_VIEWER={}", recorder.display());
    let ctl = env.user_path(&env.bin_dir().join("palisadectl"));
    ok(
        &env,
        env.run_as(
            Some(ALICE),
            &[
                "env",
                &viewer,
                &ctl.to_string_lossy(),
                "console",
                "open",
                "work",
            ],
        ),
    );
    let read = |f: &str| {
        let started = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(record.join(f)) {
                if !s.is_empty() {
                    return s;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the viewer never ran"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let vv = read("vv");
    assert_eq!(read("mode").trim(), "600");
    assert!(
        vv.contains("type=spice")
            && vv.contains(&format!("port={port}"))
            && vv.contains("password="),
        "{vv}"
    );
    let vv_password = vv
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap_or_default()
        .to_owned();
    assert!(
        !read("argv").contains(&vv_password),
        "the password reached the viewer's command line"
    );
    // A new ticket replaced the old one.
    assert!(spice_link(&env, ALICE, port, &password).starts_with("auth-failed"));
    assert_eq!(spice_link(&env, ALICE, port, &vv_password), "ok");
}

#[test]
fn an_expired_ticket_no_longer_links() {
    let env = start();
    running_work(&env, "console_ticket_seconds = 5", "");
    let t = ticket(&env, ALICE);
    let (port, password) = (
        t["port"].as_u64().unwrap_or(0),
        t["password"].as_str().unwrap_or("").to_owned(),
    );
    std::thread::sleep(Duration::from_secs(7));
    let verdict = spice_link(&env, ALICE, port, &password);
    assert!(
        verdict.starts_with("auth-failed"),
        "an expired ticket still works: {verdict}"
    );
}

/// A server standing in for a remote console at 192.0.2.10:5999 (the address put on `lo`),
/// listening once this returns; kill the child to stop it.
fn remote_console_server(env: &TestEnv) -> std::process::Child {
    ok(
        env,
        env.run_as(None, &["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]),
    );
    let mut child = env
        .spawn_as(
            None,
            &[
                "python3".to_owned(),
                netcheck(env),
                "listen-on".into(),
                "192.0.2.10".into(),
                "5999".into(),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line.trim(), "ready");
    child
}

#[test]
fn console_client_role_only_assigned_users_reach_the_remote_server() {
    let env = start();
    let doc = "[[remote_console]]\nname = \"server-work\"\nhost = \"192.0.2.10\"\nport = 5999\nusers = [\"pal-alice\"]\n";
    apply(&env, doc, &[]);
    let mut child = remote_console_server(&env);
    let reach = |user: &str| {
        let out = env.run_as(
            Some(user),
            &[
                "python3".to_owned(),
                netcheck(&env),
                "connect".into(),
                "192.0.2.10".into(),
                "5999".into(),
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(reach(ALICE), "connected");
    let bob = reach(BOB);
    assert!(
        bob.starts_with("failed") && bob.contains("refused"),
        "{bob}"
    );
    let vv = ok(
        &env,
        env.palisadectl(
            Some(ALICE),
            &["console", "open", "server-work", "--print-vv"],
        ),
    );
    let vv = String::from_utf8_lossy(&vv.stdout).into_owned();
    assert!(
        vv.contains("host=192.0.2.10") && vv.contains("port=5999") && !vv.contains("password="),
        "{vv}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The extrausers NSS module's files, written for one test and put back as they were on drop.
struct ExtraUsers {
    saved: Vec<(std::path::PathBuf, Option<Vec<u8>>)>,
}

impl ExtraUsers {
    fn install(passwd: &str, group: &str) -> ExtraUsers {
        let dir = std::path::Path::new("/var/lib/extrausers");
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        let mut saved = Vec::new();
        for (name, text) in [("passwd", passwd), ("group", group)] {
            let path = dir.join(name);
            saved.push((path.clone(), std::fs::read(&path).ok()));
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        }
        ExtraUsers { saved }
    }
}

impl Drop for ExtraUsers {
    fn drop(&mut self) {
        for (path, old) in &self.saved {
            let _ = match old {
                Some(bytes) => std::fs::write(path, bytes),
                None => std::fs::remove_file(path),
            };
        }
    }
}

/// A user known only to NSS (here the extrausers module, standing in for LDAP/SSSD), in a group
/// only by its primary gid, is in the kernel's console set exactly as the bus checks count them:
/// both ask NSS. (The helper used to read /etc/passwd for primary members and left them out.)
#[test]
fn a_directory_user_in_an_allowed_group_reaches_the_console_the_kernel_guards() {
    const UID: u32 = 64_123;
    let _extra = ExtraUsers::install(
        &format!("pal-ldap:x:{UID}:{UID}:directory user:/nonexistent:/usr/sbin/nologin\n"),
        &format!("pal-directory:x:{UID}:\n"),
    );
    let mut env = TestEnv::start_without_helper()
        .unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    // Only processes started in the namespace from now on (the helper among them) look users up
    // in extrausers too.
    let etc = env.netns_etc_dir();
    std::fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("{e}"));
    let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let nsswitch: String = nsswitch
        .lines()
        .map(|l| match l.split(':').next().map(str::trim) {
            Some(db @ ("passwd" | "group")) => format!("{db}: files extrausers\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(etc.join("nsswitch.conf"), nsswitch).unwrap_or_else(|e| panic!("{e}"));
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let seen = env.run_as(None, &["getent", "passwd", "pal-ldap"]);
    assert!(
        seen.status.success(),
        "NSS in the namespace does not see the directory user"
    );

    let doc = "[[remote_console]]\nname = \"server-work\"\nhost = \"192.0.2.10\"\nport = 5999\n\
               groups = [\"pal-directory\"]\n";
    apply(&env, doc, &[]);
    let mut child = remote_console_server(&env);
    // The directory user has no entry in /etc/passwd: enter the uid directly.
    let reach_as_uid = |uid: u32| {
        let out = env.run_as(
            None,
            &[
                "setpriv".to_owned(),
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".into(),
                "python3".into(),
                netcheck(&env),
                "connect".into(),
                "192.0.2.10".into(),
                "5999".into(),
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(reach_as_uid(UID), "connected");
    let bob = env.uid_of(BOB).unwrap_or_else(|e| panic!("{e:#}"));
    let refused = reach_as_uid(bob);
    assert!(
        refused.starts_with("failed") && refused.contains("refused"),
        "{refused}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn rss_and_fds(pid: u32) -> (u64, usize) {
    (palisade_tests::rss_kib(pid), palisade_tests::open_fds(pid))
}

#[test]
fn floods_are_rate_limited_without_growth_and_bad_names_are_refused() {
    let env = start();
    running_work(&env, "", "");
    let pid = env.helper_pid().unwrap_or(0);
    for name in ["wo\u{1}rk", &"w".repeat(10_240)] {
        let out = env.palisadectl(Some(ALICE), &["console", "open", name]);
        assert_eq!(out.status.code(), Some(64), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a console name") && err.len() < 300,
            "{err}"
        );
    }
    let flood = |count: &str| {
        let tool =
            env.user_path(&palisade_tests::workspace_dir().join("tests/tools/console_flood.py"));
        let out = env.run_as_timeout(
            Some(ALICE),
            &["/usr/bin/python3", &tool.to_string_lossy(), "work", count],
            Duration::from_secs(300),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    };
    flood("100"); // warm up: the helper's buffers reach their working size
    std::thread::sleep(Duration::from_secs(12)); // the bucket refills
    let (rss_before, fds_before) = rss_and_fds(pid);
    let result = flood("10000");
    let (rss_after, fds_after) = rss_and_fds(pid);
    // The helper's bucket: a burst of 20, then 2 per second for as long as the flood lasted
    // (plus one for the refill between the last two reads of the clock).
    let granted = result["ok"].as_u64().unwrap_or(0);
    let seconds = result["seconds"].as_f64().unwrap_or(f64::MAX);
    let most = 20 + (2.0 * seconds).ceil() as u64 + 1;
    assert!((20..=most).contains(&granted), "at most {most}: {result}");
    assert_eq!(
        granted + result["rate_limited"].as_u64().unwrap_or(0),
        10_000,
        "{result}"
    );
    assert!(
        fds_after <= fds_before + 2,
        "open files grew from {fds_before} to {fds_after}"
    );
    assert!(
        rss_after < rss_before + 4096,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[test]
fn a_real_viewer_connects_and_losing_access_disconnects_it() {
    let env = start();
    running_work(&env, "", "");
    let xvfb = palisade_tests::Xvfb::start().unwrap_or_else(|e| panic!("{e:#}"));
    let display = xvfb.display().to_owned();
    let ctl = env.user_path(&env.bin_dir().join("palisadectl"));
    let display_env = format!("DISPLAY={display}");
    ok(
        &env,
        env.run_as(
            Some(ALICE),
            &[
                "env",
                &display_env,
                &ctl.to_string_lossy(),
                "console",
                "open",
                "work",
            ],
        ),
    );
    let started = Instant::now();
    let mut channels = 0;
    while started.elapsed() < Duration::from_secs(30) {
        channels = vm_state(&env)["viewer_channels"].as_u64().unwrap_or(0);
        if channels >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        channels >= 2,
        "remote-viewer did not connect (channels: {channels})\n{}",
        env.helper_log()
    );
    let artifacts = palisade_tests::workspace_dir().join("tests/artifacts");
    let _ = std::fs::create_dir_all(&artifacts);
    std::thread::sleep(Duration::from_secs(2));
    let _ = std::process::Command::new("import")
        .args(["-display", &display, "-window", "root"])
        .arg(artifacts.join("console-viewer.png"))
        .status();

    // Alice loses the console: she is disconnected, not merely kept from reconnecting.
    apply(
        &env,
        &vm_policy_with("pal.stay=1", "\"pal-alice\"", "", "").replace(
            "console = { users = [\"pal-alice\"] }",
            "console = { users = [] }",
        ),
        &[],
    );
    let started = Instant::now();
    while vm_state(&env)["viewer_channels"].as_u64().unwrap_or(0) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the viewer stayed connected after access was removed"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = env.run_as(None, &["pkill", "-u", "pal-alice", "remote-viewer"]);
}

#[test]
fn spice_over_tls_with_the_palisade_ca() {
    let env = start();
    running_work(&env, "", "");
    let tls = vm_policy_with("pal.stay=1", "\"pal-alice\"", "", "").replace(
        "console = { users = [\"pal-alice\"] }",
        "console = { users = [\"pal-alice\"] }\ndisplay = { tls = true }",
    );
    ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "stop", "work", "--force"]),
    );
    apply(&env, &tls, &[]);
    ok(&env, env.palisadectl(Some(ALICE), &["vm", "start", "work"]));
    let t = ticket(&env, ALICE);
    assert_eq!(t["tls"], true, "{t}");
    let ca = t["ca_pem"].as_str().unwrap_or_default().to_owned();
    assert!(ca.contains("BEGIN CERTIFICATE"), "{t}");
    let (port, password) = (
        t["port"].as_u64().unwrap_or(0),
        t["password"].as_str().unwrap_or("").to_owned(),
    );
    let ca_file = env
        .write_file("ca.pem", &ca)
        .unwrap_or_else(|e| panic!("{e}"));
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/spice_link.py"));
    let link = |extra: &[&str]| {
        let mut argv = vec![
            "/usr/bin/python3".to_owned(),
            tool.to_string_lossy().into_owned(),
            "127.0.0.1".into(),
            port.to_string(),
            password.clone(),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        let out = env.run_as(Some(ALICE), &argv);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(link(&["--tls", &ca_file.to_string_lossy()]), "ok");
    // No plain-text port exists: speaking plain Spice to the TLS port fails.
    assert_ne!(link(&[]), "ok");
    let vv = ok(
        &env,
        env.palisadectl(Some(ALICE), &["console", "open", "work", "--print-vv"]),
    );
    let vv = String::from_utf8_lossy(&vv.stdout).into_owned();
    assert!(
        vv.contains(&format!("tls-port={port}"))
            && vv.contains("ca=-----BEGIN CERTIFICATE-----\\n"),
        "{vv}"
    );
}
