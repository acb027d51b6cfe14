//! Acceptance tests of the firewall's life over time: expiring rules, previews, the policy file
//! on disk (hand-edited, corrupt), and boot-time loading with `--apply-only`.

mod common;

use common::*;
use palisade_tests::{TestEnv, ADMIN};
use std::time::{Duration, SystemTime};

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

#[test]
fn an_expiring_rule_disappears_by_itself() {
    let env = start();
    let expires = humantime_in(Duration::from_secs(4));
    let doc = format!(
        "{}\n[[vm.rule]]\naction = \"accept\"\ndestination = \"127.0.0.1\"\nproto = \"tcp\"\nports = 8444\nexpires = \"{expires}\"\ncomment = \"temporary\"\n",
        work_policy(8443)
    );
    apply(&env, &doc, &[]);
    let _listener = listen(&env, &[8444]);
    assert!(
        connects(&env, "palisade-vm-work", 8444),
        "the temporary rule does not work"
    );
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !connects(&env, "palisade-vm-work", 8444),
        "the expired rule still lets traffic through"
    );
    assert!(
        !table_raw(&env).contains("temporary"),
        "the expired rule is still in the kernel"
    );
    assert_eq!(generation(&env), 1, "expiry is not a new generation");
}

fn humantime_in(d: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + d).to_string()
}

#[test]
fn preview_shows_the_ruleset_and_diff_and_changes_nothing() {
    let env = start();
    apply(&env, &work_policy(8443), &[]);
    let before = table_raw(&env);
    let file = env
        .write_file("next.toml", work_policy(9443))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = ok(
        &env,
        env.palisadectl(
            Some(ADMIN),
            &["--json", "policy", "preview", &file.to_string_lossy()],
        ),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let ruleset = v["ruleset"].as_str().unwrap_or_default();
    let diff = v["diff"].as_str().unwrap_or_default();
    assert!(
        ruleset.contains("table inet palisade") && ruleset.contains("tcp dport 9443"),
        "{ruleset}"
    );
    assert!(
        diff.contains("-") && diff.contains("+") && diff.contains("9443") && diff.contains("8443"),
        "{diff}"
    );
    assert_eq!(table_raw(&env), before, "a preview changed the kernel");
    assert_eq!(generation(&env), 1);
}

#[test]
fn a_corrupt_policy_file_is_refused_and_the_last_good_generation_stays() {
    let mut env = start();
    apply(&env, &work_policy(8443), &[]);
    let good = table_normalised(&env);
    env.stop_helper();
    let file = env.config_dir().join("policy.toml");
    std::fs::write(&file, b"[[vm]]\nname = \"work\"\nports = [unclosed\n")
        .unwrap_or_else(|e| panic!("{e}"));
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let out = ok(&env, env.palisadectl(None, &["--json", "status"]));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["generation"], 1);
    let problem = v["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("policy.toml") && problem.contains("not a valid policy"),
        "{problem}"
    );
    assert_eq!(table_normalised(&env), good);
}

#[test]
fn a_hand_edited_policy_file_becomes_a_new_generation_at_start() {
    let mut env = start();
    apply(&env, &work_policy(8443), &[]);
    env.stop_helper();
    std::fs::write(env.config_dir().join("policy.toml"), work_policy(9443))
        .unwrap_or_else(|e| panic!("{e}"));
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(generation(&env), 2);
    assert!(table_raw(&env).contains("9443"));
    let out = ok(&env, env.palisadectl(None, &["policy", "history"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy file edited on disk"));
}

#[test]
fn apply_only_loads_the_confirmed_generation_at_boot() {
    let mut env = start();
    apply(&env, &work_policy(8443), &[]);
    let confirmed = table_normalised(&env);
    // A pending change that nobody confirms must not be what boot loads.
    apply(&env, &work_policy(9443), &["--confirm", "600"]);
    env.stop_helper();
    ok(&env, env.nft(&["delete", "table", "inet", "palisade"]));
    let helper = env.bin_dir().join("palisade-helper");
    let state = env.state_dir().to_string_lossy().into_owned();
    let config = env.config_dir().to_string_lossy().into_owned();
    ok(
        &env,
        env.run_as(
            None,
            &[
                helper.to_string_lossy().as_ref(),
                "--apply-only",
                "--state-dir",
                &state,
                "--config-dir",
                &config,
            ],
        ),
    );
    assert_eq!(
        table_normalised(&env),
        confirmed,
        "boot did not load the last confirmed generation"
    );
}

/// Without `nft` the helper says what is missing and which package has it, and exits; it does
/// not panic, and it does not serve a firewall it cannot load.
#[test]
fn a_missing_program_is_one_sentence_at_start_not_a_panic() {
    let env = TestEnv::start_without_helper()
        .unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    // A PATH with everything but nft and QEMU: a folder of links to conntrack only.
    let bin = env.dir().join("bin-without-nft");
    std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
    let conntrack = ["/usr/sbin/conntrack", "/sbin/conntrack"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| panic!("conntrack is not installed"));
    std::os::unix::fs::symlink(conntrack, bin.join("conntrack")).unwrap_or_else(|e| panic!("{e}"));
    let helper = env.bin_dir().join("palisade-helper");
    let state = env.state_dir().to_string_lossy().into_owned();
    let config = env.config_dir().to_string_lossy().into_owned();
    let out = env.run_as_timeout(
        None,
        &[
            "env".to_owned(),
            format!("PATH={}", bin.display()),
            helper.to_string_lossy().into_owned(),
            "--bus-address".into(),
            env.bus_address().to_owned(),
            "--state-dir".into(),
            state,
            "--config-dir".into(),
            config,
        ],
        Duration::from_secs(30),
    );
    let said = text(&out);
    assert!(!out.status.success(), "the helper ran without nft: {said}");
    assert!(
        said.contains("the program nft is not installed") && said.contains("nftables package"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    // Nothing was loaded into the kernel.
    let tables = env.nft(&["list", "tables"]);
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("palisade"));
}

/// A mount over a test's folder, made before the helper starts (the host's mounts are private
/// here, so a later one would not reach the helper's mount namespace); unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    /// A tmpfs of `size` (`1m`) over `dir`.
    fn tmpfs(dir: &std::path::Path, size: &str) -> Mount {
        Mount::run(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "palisade-test",
            ],
            dir,
        );
        Mount(dir.to_path_buf())
    }

    /// `dir` bound onto itself, read-only.
    fn read_only(dir: &std::path::Path) -> Mount {
        Mount::run(&["--bind", &dir.to_string_lossy()], dir);
        let mount = Mount(dir.to_path_buf());
        Mount::run(&["-o", "remount,bind,ro"], dir);
        mount
    }

    fn run(args: &[&str], dir: &std::path::Path) {
        let done = std::process::Command::new("mount")
            .args(args)
            .arg(dir)
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(done.success(), "mount {args:?} {}", dir.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.0)
            .status();
    }
}

/// The state folder full while a generation is saved: a clear error, and the previous generation
/// stays live in the kernel and in the helper; with room again, the same apply works.
#[test]
fn a_full_disk_while_saving_keeps_the_previous_generation() {
    let mut env = TestEnv::start_without_helper()
        .unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    let state = env.state_dir().to_path_buf();
    let _disk = Mount::tmpfs(&state, "1m");
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    apply(&env, &work_policy(8443), &[]);
    let live = generation(&env);

    // Fill what is left of the folder.
    let filler = state.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap_or_else(|e| panic!("{e}"));
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let file = env
        .write_file("next.toml", work_policy(9443))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = env.palisadectl(Some(ADMIN), &["policy", "apply", &file.to_string_lossy()]);
    assert!(!out.status.success(), "an apply succeeded on a full disk");
    assert!(
        text(&out).contains("No space left on device"),
        "{}",
        text(&out)
    );
    assert_eq!(generation(&env), live, "the live generation changed");
    let table = table_raw(&env);
    assert!(
        table.contains("8443") && !table.contains("9443"),
        "the kernel does not hold the previous generation:\n{table}"
    );

    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    apply(&env, &work_policy(9443), &[]);
    assert!(generation(&env) > live);
    assert!(table_raw(&env).contains("9443"));
}

/// The policy file cannot be written after the kernel took the new ruleset: the apply succeeds
/// with a warning saying what was not saved, and client, kernel and helper agree on the new
/// generation (nothing after the kernel's commit fails the call); a restart brings back that
/// generation, which the state folder recorded.
#[test]
fn a_failure_after_the_commit_is_a_warning_with_the_success() {
    let mut env = TestEnv::start_without_helper()
        .unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    let config = env.config_dir().to_path_buf();
    let read_only = Mount::read_only(&config);
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let before = generation(&env);
    let file = env
        .write_file("next.toml", work_policy(9443))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["policy", "apply", &file.to_string_lossy()]),
    );
    let said = text(&out);
    assert!(
        said.contains("is live, but") && said.contains("could not be written"),
        "{said}"
    );
    let now = generation(&env);
    assert!(now > before, "the generation did not advance");
    assert!(
        table_raw(&env).contains("9443"),
        "the kernel lacks the new ruleset"
    );
    let got = ok(&env, env.palisadectl(Some(ADMIN), &["policy", "show"]));
    assert!(
        text(&got).contains("9443"),
        "the helper serves another policy"
    );

    env.stop_helper();
    drop(read_only);
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        generation(&env),
        now,
        "a restart brought back another generation"
    );
    assert!(table_raw(&env).contains("9443"));
}

/// The bus dies under the helper: it exits with an error that says so (for systemd's
/// Restart=on-failure), without a panic, and the kernel keeps the live ruleset.
#[test]
fn losing_the_bus_ends_the_helper_cleanly_and_the_ruleset_stays() {
    let mut env = start();
    apply(&env, &work_policy(8443), &[]);
    let before = table_normalised(&env);
    env.kill_bus();
    let status = env
        .wait_helper_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the helper still runs 20 s after the bus died"));
    assert!(
        !status.success(),
        "the helper exited with success: {status}"
    );
    let log = env.helper_log();
    assert!(
        log.contains("lost the connection to the D-Bus system bus"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(table_normalised(&env), before, "the ruleset changed");
}
