//! Acceptance tests of the hardening issue's fault loop: the helper killed (SIGKILL) at random
//! moments of an apply, a blocklist import and a VM start, fifty times. After each restart the
//! kernel holds exactly the generation the helper says is live, the store's policy parses, the
//! imported list the kernel enforces is the one the store has, and there is one QEMU for a
//! running VM and none for a stopped one: nothing orphaned, nothing duplicated.

mod common;

use common::*;
use palisade_tests::{TestEnv, ADMIN, ALICE};
use std::time::Duration;

/// Rounds of the loop.
const ROUNDS: u32 = 50;
/// Two policies, told apart in the kernel by the port of one rule.
const MARKERS: [u16; 2] = [7101, 7202];
/// Listed by both versions of the list.
const LISTED: &str = "127.66.0.1";
/// Listed only by the second version.
const ONLY_SECOND: &str = "127.67.0.1";
/// The port the listener answers on.
const PORT: u16 = 8443;

fn policy(marker: u16) -> String {
    palisade_tests::vm_policy_with(
        "pal.stay=1",
        "\"pal-alice\"",
        "",
        &format!(
            r#"
[[blocklist]]
name = "big"
imported = true

[[host_rule]]
action = "reject"
blocklist = "big"

[[host_rule]]
action = "drop"
destination = "127.99.0.1"
proto = "tcp"
ports = {marker}
"#
        ),
    )
}

/// A list of `n` networks and the listed test network; the second version adds another.
fn write_list(env: &TestEnv, name: &str, n: u32, second: bool) -> String {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("10.{}.{}.0/24\n", i / 256, i % 256));
    }
    text.push_str("127.66.0.0/24\n");
    if second {
        text.push_str("127.67.0.0/24\n");
    }
    let path = env.write_file(name, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

fn connects_to(env: &TestEnv, host: &str) -> bool {
    connects_to_host(env, ADMIN, host, PORT)
}

/// QEMU processes running as the VM's user in the test's namespace (other tests may run VMs of
/// the same name, and so of the same user, elsewhere).
fn qemus(env: &TestEnv, vm_uid: u32) -> Vec<u32> {
    let mine = env.netns_pids();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                    if !mine.contains(&(pid as i32)) {
                        return None;
                    }
                    let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
                    let owner =
                        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(e.path()).ok()?);
                    (comm.starts_with("qemu") && owner == vm_uid).then_some(pid)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A small deterministic generator, so a failing round can be named and run again.
struct Rounds(u64);

impl Rounds {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn fifty_kills_during_applies_imports_and_starts_leave_one_whole_state() {
    let mut env = TestEnv::start().unwrap_or_else(|e| panic!("cannot start: {e:#}"));
    let _listener = listen_on(&env, "0.0.0.0", PORT);
    create_work(&env, "pal.stay=1");
    let lists = [
        write_list(&env, "first.txt", 3_000, false),
        write_list(&env, "second.txt", 3_000, true),
    ];
    let hash_of_import = |list: &str| {
        let out = ok(
            &env,
            env.palisadectl(Some(ADMIN), &["--json", "blocklist", "import", "big", list]),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["content_hash"].as_str().unwrap_or_default().to_owned()
    };
    let second_hash = hash_of_import(&lists[1]);
    let first_hash = hash_of_import(&lists[0]);
    assert!(!first_hash.is_empty() && first_hash != second_hash);
    let docs: Vec<_> = MARKERS
        .iter()
        .map(|&m| {
            env.write_file(&format!("policy-{m}.toml"), policy(m))
                .unwrap_or_else(|e| panic!("{e}"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    apply(&env, &policy(MARKERS[0]), &[]);
    let vm_uid = env
        .uid_of("palisade-vm-work")
        .unwrap_or_else(|e| panic!("{e:#}"));

    let mut rng = Rounds(0x5eed_1234_abcd_0042);
    let mut log = Vec::new();
    // How often each change had landed when the helper died: the loop must hit both sides.
    let (mut second_policy, mut second_list, mut vm_up) = (0, 0, 0);
    for round in 0..ROUNDS {
        let what = round % 3;
        let mut client = match what {
            0 => spawn_palisadectl(
                &env,
                ADMIN,
                &["policy", "apply", &docs[(round as usize / 3) % 2]],
            ),
            1 => spawn_palisadectl(
                &env,
                ADMIN,
                &[
                    "blocklist",
                    "import",
                    "big",
                    &lists[(round as usize / 3) % 2],
                ],
            ),
            _ if qemus(&env, vm_uid).is_empty() => {
                spawn_palisadectl(&env, ALICE, &["vm", "start", "work"])
            }
            _ => spawn_palisadectl(&env, ALICE, &["vm", "stop", "work", "--force"]),
        };
        let delay = rng.next(700);
        std::thread::sleep(Duration::from_millis(delay));
        env.kill_helper(palisade_tests::Signal::SIGKILL)
            .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        let _ = client.wait();
        env.start_helper()
            .unwrap_or_else(|e| panic!("round {round}: restart: {e:#}"));
        let context = format!("round {round} (operation {what}, killed after {delay} ms)");

        // The kernel holds the generation the helper says is live, and the store's policy is
        // that generation's and parses.
        let shown = ok(&env, env.palisadectl(Some(ADMIN), &["policy", "show"]));
        let shown = text(&shown);
        let live: Vec<u16> = MARKERS
            .iter()
            .copied()
            .filter(|m| shown.contains(&format!("ports = {m}")))
            .collect();
        assert_eq!(
            live.len(),
            1,
            "{context}: the live policy is neither: {shown}"
        );
        let table = table_normalised(&env);
        for m in MARKERS {
            assert_eq!(
                holds_number(&table, m),
                m == live[0],
                "{context}: the kernel and the live generation ({}) disagree about port {m}",
                live[0]
            );
        }
        let file = env.config_dir().join("policy.toml");
        if file.exists() {
            ok(
                &env,
                env.palisadectl(
                    None,
                    &["policy", "validate", "--offline", &file.to_string_lossy()],
                ),
            );
        }

        // The kernel enforces the list version the store has, whole.
        let info = ok(
            &env,
            env.palisadectl(Some(ADMIN), &["--json", "blocklist", "show", "big"]),
        );
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap_or_default();
        let hash = info["content_hash"].as_str().unwrap_or_default();
        assert!(
            hash == first_hash || hash == second_hash,
            "{context}: the store holds neither version: {info}"
        );
        let second = hash == second_hash;
        assert!(
            !connects_to(&env, LISTED),
            "{context}: a listed address connects"
        );
        assert_eq!(
            !connects_to(&env, ONLY_SECOND),
            second,
            "{context}: the store has the {} version, the kernel not",
            if second { "second" } else { "first" }
        );

        // One QEMU for a running VM, none for a stopped one.
        let running = qemus(&env, vm_uid);
        assert!(running.len() <= 1, "{context}: QEMUs {running:?}");
        let state = vm_state(&env);
        let says = state["state"].as_str().unwrap_or_default().to_owned();
        if running.is_empty() {
            assert_ne!(
                says, "running",
                "{context}: the helper lost its QEMU: {state}"
            );
        } else {
            assert!(
                says == "running" || says == "starting" || says == "shutting down",
                "{context}: a QEMU runs that the helper calls {says}"
            );
        }
        second_policy += u32::from(live[0] == MARKERS[1]);
        second_list += u32::from(second);
        vm_up += u32::from(!running.is_empty());
        log.push(format!("{round}:{what}@{delay}ms"));
    }
    eprintln!(
        "rounds: {}; after them: second policy {second_policy}, second list {second_list}, \
         VM running {vm_up} of {ROUNDS}",
        log.join(" ")
    );
    for (what, n) in [
        ("policy", second_policy),
        ("list", second_list),
        ("VM", vm_up),
    ] {
        assert!(
            n > 0 && n < ROUNDS,
            "the kills never landed on both sides of a {what} change ({n} of {ROUNDS})"
        );
    }
    let _ = env.palisadectl(Some(ALICE), &["vm", "stop", "work", "--force"]);
}
