//! Tests of the harness itself: the private bus, the real polkitd with the repo's and the test
//! users' rules, the netns and the teardown. Needs root; run with `--test-threads=1`.
//!
//! Most tests run without the helper, so the harness can be trusted before the helper is; the
//! last two start the real helper and run the real palisadectl, and fail if those have not been
//! built (`cargo build --workspace` first, as `make test` does).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use palisade_dbus::names::{Action, BUS_NAME};
use palisade_tests::{
    describe, list_netns, name_has_owner, run_bounded, wait_until, TestEnv, ADMIN, ALICE, BOB,
    POLKIT_BUS_NAME,
};

/// pkcheck's exit status for "authorized".
const AUTHORIZED: i32 = 0;
/// pkcheck's exit status for "not authorized" (polkit said NO).
const REFUSED: i32 = 1;
/// pkcheck's exit status for "authorized only after authenticating".
const CHALLENGE: i32 = 2;

fn pkcheck_status(env: &TestEnv, user: &str, action: Action) -> Result<i32> {
    let out = env.pkcheck(user, action.id())?;
    out.status
        .code()
        .with_context(|| format!("pkcheck was killed: {}", describe(&out)))
}

#[test]
fn polkit_decides_by_the_repo_and_test_rules() -> Result<()> {
    let env = TestEnv::start_without_helper()?;

    for action in [Action::ConsoleOpen, Action::VmOperate, Action::PolicyRead] {
        let status = pkcheck_status(&env, ALICE, action)?;
        ensure!(status == AUTHORIZED, "{ALICE} {action}: {status}");
    }
    // Nothing grants Alice the admin actions: at most a password prompt, never a silent yes.
    let status = pkcheck_status(&env, ALICE, Action::PolicyManage)?;
    ensure!(
        status == REFUSED || status == CHALLENGE,
        "{ALICE} policy.manage: {status}"
    );

    for action in Action::ALL {
        let status = pkcheck_status(&env, BOB, action)?;
        ensure!(status == REFUSED, "{BOB} {action}: {status}");
        // The shipped group rule admits the admin to everything, without a password.
        let status = pkcheck_status(&env, ADMIN, action)?;
        ensure!(status == AUTHORIZED, "{ADMIN} {action}: {status}");
    }
    Ok(())
}

#[test]
fn test_users_reach_the_private_bus_and_nothing_else() -> Result<()> {
    let env = TestEnv::start_without_helper()?;
    let list_names = |user| {
        env.dbus_send_as(
            user,
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames",
            &[],
        )
    };
    for user in [Some(ALICE), Some(BOB), None] {
        let out = list_names(user);
        ensure!(out.status.success(), "{user:?}: {}", describe(&out));
        let names = String::from_utf8_lossy(&out.stdout);
        ensure!(names.contains(POLKIT_BUS_NAME), "{user:?} sees {names}");
    }

    // The bus policy (repo's helper policy) keeps the helper's name for root.
    let out = env.dbus_send_as(
        Some(ALICE),
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus.RequestName",
        &[&format!("string:{BUS_NAME}"), "uint32:0"],
    );
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("AccessDenied"),
        "a user could own {BUS_NAME}: {}",
        describe(&out)
    );

    // Commands run as the user, inside the netns.
    let out = env.run_as(Some(ALICE), &["id", "-un"]);
    ensure!(
        String::from_utf8_lossy(&out.stdout).trim() == ALICE,
        "{}",
        describe(&out)
    );
    let inside = env.run_as(Some(BOB), &["readlink", "/proc/self/ns/net"]);
    let host = std::fs::read_link("/proc/self/ns/net")?;
    ensure!(inside.status.success(), "{}", describe(&inside));
    ensure!(
        String::from_utf8_lossy(&inside.stdout).trim() != host.to_string_lossy(),
        "commands run in the host's network namespace"
    );
    Ok(())
}

#[test]
fn nft_acts_on_the_netns_only() -> Result<()> {
    let env = TestEnv::start_without_helper()?;
    let table = format!("palisade_harness_{}", std::process::id());
    let out = env.nft(&["add", "table", "inet", &table]);
    ensure!(out.status.success(), "{}", describe(&out));
    let inside = env.nft(&["list", "tables"]);
    ensure!(
        String::from_utf8_lossy(&inside.stdout).contains(&table),
        "{}",
        describe(&inside)
    );
    // Reading the host's tables is harmless; the new table must not be there.
    let host = run_bounded(
        Command::new("nft").args(["list", "tables"]),
        Duration::from_secs(10),
    );
    ensure!(
        !String::from_utf8_lossy(&host.stdout).contains(&table),
        "the table leaked onto the host"
    );
    Ok(())
}

#[test]
fn polkit_can_be_stopped_and_restarted() -> Result<()> {
    let mut env = TestEnv::start_without_helper()?;
    env.stop_polkit();
    ensure!(!name_has_owner(env.bus_address(), POLKIT_BUS_NAME)?);
    let out = env.pkcheck(ALICE, Action::ConsoleOpen.id())?;
    ensure!(
        !out.status.success(),
        "authorized without polkitd: {}",
        describe(&out)
    );

    env.start_polkit()?;
    ensure!(pkcheck_status(&env, ALICE, Action::ConsoleOpen)? == AUTHORIZED);
    ensure!(env.polkit_log().matches("starting polkitd").count() == 2);
    Ok(())
}

/// What a dropped environment must have left behind: nothing.
fn assert_gone(netns: &str, dir: &Path, pids: &[i32]) -> Result<()> {
    ensure!(
        !list_netns()?.iter().any(|n| n == netns),
        "netns {netns} left behind"
    );
    ensure!(!dir.exists(), "{} left behind", dir.display());
    for pid in pids {
        // A killed child of ours may linger as a zombie until reaped; it holds no namespace.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z");
        ensure!(!running, "process {pid} survived the teardown");
    }
    Ok(())
}

#[test]
fn drop_removes_netns_dir_and_processes() -> Result<()> {
    let env = TestEnv::start_without_helper()?;
    let netns = env.netns().to_owned();
    let dir = env.dir().to_path_buf();
    ensure!(list_netns()?.contains(&netns));
    // A process the test starts and forgets must die with the environment too.
    let forgotten = env.spawn_as(Some(ALICE), &["sleep", "600"])?;
    // `ip netns exec` enters the namespace a moment after it is spawned: wait for it (bounded),
    // or a loaded machine fails this at random.
    let mut pids = env.netns_pids();
    wait_until(Duration::from_secs(10), || {
        pids = env.netns_pids();
        pids.contains(&(forgotten.id() as i32))
    });
    ensure!(pids.contains(&(forgotten.id() as i32)), "{pids:?}");
    ensure!(
        pids.len() >= 3,
        "bus, polkitd and sleep expected in {pids:?}"
    );
    drop(env);
    assert_gone(&netns, &dir, &pids)
}

#[test]
fn drop_cleans_up_after_a_panic() -> Result<()> {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let env = match TestEnv::start_without_helper() {
            Ok(env) => env,
            Err(err) => panic!("start failed: {err:#}"),
        };
        seen = Some((
            env.netns().to_owned(),
            env.dir().to_path_buf(),
            env.netns_pids(),
        ));
        panic!("a failing test");
    }));
    ensure!(result.is_err());
    let (netns, dir, pids) = seen.context("the environment never started")?;
    assert_gone(&netns, &dir, &pids)
}

#[test]
fn helper_starts_restarts_and_answers() -> Result<()> {
    let mut env = TestEnv::start()?;
    ensure!(name_has_owner(env.bus_address(), BUS_NAME)?);
    let xml = env.introspect()?;
    ensure!(xml.contains("io.palisade.Helper1"), "{xml}");

    env.kill_helper(palisade_tests::Signal::SIGKILL)?;
    ensure!(!name_has_owner(env.bus_address(), BUS_NAME)?);
    env.start_helper()?;
    ensure!(name_has_owner(env.bus_address(), BUS_NAME)?);
    ensure!(
        env.helper_log()
            .matches("=== palisade-tests: starting")
            .count()
            == 2
    );
    Ok(())
}

#[test]
fn commands_never_hang_and_failures_have_an_output() -> Result<()> {
    let env = TestEnv::start_without_helper()?;
    let started = std::time::Instant::now();
    // A grandchild keeps the pipes open too: the whole process group must go.
    let out = env.run_as_timeout(
        Some(ALICE),
        &["sh", "-c", "sleep 100 & sleep 100"],
        Duration::from_secs(1),
    );
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    ensure!(out.status.code().is_none(), "{}", describe(&out));
    ensure!(String::from_utf8_lossy(&out.stderr).contains("killed"));

    let out = env.run_as(Some("pal-nobody-here"), &["true"]);
    ensure!(out.status.code() == Some(127), "{}", describe(&out));
    ensure!(String::from_utf8_lossy(&out.stderr).contains("pal-nobody-here"));
    Ok(())
}

/// The whole chain a user's machine has: palisadectl as a real user → private bus → helper →
/// polkitd deciding by the caller's bus name → the user's rules.
#[test]
fn palisadectl_runs_as_each_user() -> Result<()> {
    let env = TestEnv::start()?;
    for user in [Some(ADMIN), Some(ALICE), None] {
        let out = env.palisadectl(user, &["status"]);
        ensure!(out.status.success(), "{user:?}: {}", describe(&out));
    }
    let out = env.palisadectl(Some(BOB), &["status"]);
    let refused = palisade_dbus::error::Error::NotAuthorized(String::new()).exit_code();
    ensure!(out.status.code() == Some(refused), "{}", describe(&out));
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains(Action::PolicyRead.id()),
        "{}",
        describe(&out)
    );
    Ok(())
}
