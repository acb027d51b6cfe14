//! Acceptance tests of the Firewall page's editor (issue 11) beyond `app.rs`: an apply nobody
//! keeps is reverted by the helper to the very ruleset that was live before; the parts of the
//! local policy the editor has no widgets for survive an edit line for line; and the editor is
//! usable with the keyboard alone.
//!
//! Same approach as `app.rs` (see its module doc): the real `palisade` window under Xvfb as the
//! admin `pal-admin`, the real helper, polkitd and nft, the window read over AT-SPI. The keyboard
//! test sends real X key events (Debian's `xdotool`, XTest) and reads over AT-SPI only where the
//! focus is (`tests/tools/atspi_keys.py`); it never clicks and never moves the pointer.

mod common;
mod gui;

use common::*;
use gui::*;
use palisade_tests::{describe, run_bounded, wait_until, TestEnv, ADMIN};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The seconds the keep-or-revert dialog says are left ("Reverting in N s"), if it shows them.
fn seconds_left(tree: &Value) -> Option<u32> {
    nodes(tree)
        .iter()
        .filter(|n| role(n) == "label" && is_shown(n))
        .find_map(|n| {
            name(n)
                .strip_prefix("Reverting in ")?
                .strip_suffix(" s")?
                .parse()
                .ok()
        })
}

#[test]
fn an_apply_nobody_keeps_is_reverted_to_the_ruleset_live_before() {
    let env =
        TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    assert_eq!(apply_as_root(&env, "policy.toml", &work_policy(8443)), 1);
    let before = table_normalised(&env);
    let mut gui = open_editor(&env);
    add_work_rule(&mut gui, &env, 8444);
    gui.click(&env, "push button", "Apply the changes", UPDATE_TIMEOUT);

    // The countdown runs: read it twice, a few seconds apart, and it went down.
    let tree = gui.wait_for(&env, "the keep-or-revert dialog", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Keep these settings?") && seconds_left(t).is_some()
    });
    let first = seconds_left(&tree).unwrap_or_default();
    assert_eq!(generation(&env), 2, "the apply did not make generation 2");
    assert_ne!(
        table_normalised(&env),
        before,
        "the pending generation did not change the ruleset"
    );
    std::thread::sleep(Duration::from_secs(3));
    let tree = gui.wait_for(&env, "the countdown again", UPDATE_TIMEOUT, |t| {
        seconds_left(t).is_some_and(|now| now < first)
    });
    let second = seconds_left(&tree).unwrap_or_default();
    eprintln!("countdown: {first} s, then {second} s");
    assert!(second < first, "{first} s, then {second} s");

    // Nobody answers. After the deadline the helper brings generation 1 back, exactly.
    assert!(
        wait_until(Duration::from_secs(60), || history(&env)[0]["state"]
            == "reverted"),
        "generation 2 was not reverted: {}\n--- helper log\n{}",
        history(&env),
        env.helper_log()
    );
    let h = history(&env);
    assert_eq!(h[0]["generation"], 2, "{h}");
    assert_eq!(generation(&env), 1, "{h}");
    assert_eq!(
        table_normalised(&env),
        before,
        "the ruleset after the revert is not the one live before the apply"
    );

    // The app shows the reverted generation and no dialog waits any more.
    let tree = gui.wait_for(&env, "generation 1 again", UPDATE_TIMEOUT, |t| {
        nodes(t)
            .iter()
            .any(|n| role(n) == "label" && name(n) == "The live policy, generation 1")
            && !shows_label(t, "Keep these settings?")
    });
    assert!(seconds_left(&tree).is_none(), "{}", outline(&tree));
    gui.screenshot(&env, "app-editor-reverted.png");
    gui.assert_running();
}

/// A local policy using much of what the editor shows no widget for, written the way a person
/// writes: comments everywhere, keys in no particular order, settings sections, a blocklist with
/// entries, strict DNS, a display section, a remote console.
const HAND_WRITTEN: &str = r#"# Written by hand; the app must leave all of this alone.
#   (two spaces of indent in this comment, kept)

[settings]
versions_kept = 4          # keep four versions of each image
console_ticket_seconds = 45

[settings.log]
keep_on_disk = false

[settings.dns]
ttl_floor_seconds = 30
grace_seconds = 10

[[blocklist]]
# entries in no order, one per line
name = "known-bad"
entries = [
  "198.51.100.0/24",
  "192.0.2.0/24",   # the documentation range
]

[[remote_console]]
port = 5999
name = "server-work"
host = "192.0.2.10"
users = ["pal-alice"]

[[host_rule]]
comment = "never talk to known-bad networks"
blocklist = "known-bad"
action = "drop"

[[vm]]
default = "drop"
name = "work"
console = { users = ["pal-alice"] }
operators = { users = ["pal-alice"] }
strict_dns = true
dns = true
display = { clipboard = true, video = "virtio" }

[[vm.rule]]
ports = 8443
proto = "tcp"
destination = "127.0.0.1"   # the test listener
action = "accept"
comment = "the test listener"

[[vm.rule]]
action = "reject"
proto = "udp"
ports = "1000-2000"
enabled = false
"#;

#[test]
fn what_the_editor_has_no_widgets_for_survives_an_edit_line_for_line() {
    let env =
        TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    assert_eq!(apply_as_root(&env, "policy.toml", HAND_WRITTEN), 1);
    let shown = |env: &TestEnv| -> String {
        let out = ok(env, env.palisadectl(None, &["--json", "policy", "show"]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        v["document"].as_str().unwrap_or_default().to_owned()
    };
    let original = shown(&env);
    assert_eq!(original, HAND_WRITTEN, "the helper stored another document");

    // Rule 1 of work: its port, 8443 → 8445, in the rule dialog; applied and kept.
    let mut gui = open_editor(&env);
    gui.click(&env, "push button", "Edit rule 1 of work", UPDATE_TIMEOUT);
    gui.wait_for(&env, "the rule dialog", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Rule 1 of work")
    });
    gui.set_text(&env, "text", "Ports", "8445", UPDATE_TIMEOUT);
    gui.wait_for(&env, "Save enabled", UPDATE_TIMEOUT, |t| {
        shows_button(t, "_Save Save")
    });
    gui.click(&env, "push button", "_Save Save", UPDATE_TIMEOUT);
    gui.wait_for(&env, "the changed rule in the draft", UPDATE_TIMEOUT, |t| {
        shows_label(t, "1 unsaved change") && shows_label(t, "1. accept tcp 127.0.0.1 port 8445")
    });
    apply_and_keep(&mut gui, &env);
    let h = history(&env);
    assert_eq!(h[0]["generation"], 2, "{h}");
    assert_eq!(h[0]["state"], "live", "{h}");

    // Every line as it was, but the edited rule's port.
    let edited = shown(&env);
    let (before, after): (Vec<&str>, Vec<&str>) =
        (original.lines().collect(), edited.lines().collect());
    assert_eq!(
        before.len(),
        after.len(),
        "lines were added or removed:\n--- before\n{original}\n--- after\n{edited}"
    );
    let changed: Vec<(usize, &str, &str)> = before
        .iter()
        .zip(&after)
        .enumerate()
        .filter(|(_, (b, a))| b != a)
        .map(|(i, (b, a))| (i + 1, *b, *a))
        .collect();
    let port_line = before
        .iter()
        .position(|l| *l == "ports = 8443")
        .map_or(0, |i| i + 1);
    assert_eq!(
        changed,
        [(port_line, "ports = 8443", "ports = 8445")],
        "lines other than the edited rule's port changed:\n--- after\n{edited}"
    );
    assert_eq!(
        original.ends_with('\n'),
        edited.ends_with('\n'),
        "the final newline changed"
    );
    gui.assert_running();
}

// --- Keyboard only --------------------------------------------------------------------------

/// Tabs, with real key events, until the control `role` named `name` has the focus, then presses
/// `key` there (see `tests/tools/atspi_keys.py`). Retries while the control is not there yet.
#[track_caller]
fn key_on(gui: &mut Gui, env: &TestEnv, role: &str, name: &str, key: &str) {
    keys(gui, env, role, name, &["key", key]);
}

/// Types `text` where the keyboard focus is now.
#[track_caller]
fn type_here(gui: &mut Gui, env: &TestEnv, text: &str) {
    keys(gui, env, "-", "-", &["type", text]);
}

#[track_caller]
fn keys(gui: &mut Gui, env: &TestEnv, role: &str, name: &str, what: &[&str]) {
    let tool = gui.tool(env, "atspi_keys.py");
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    loop {
        gui.assert_running();
        let mut cmd = gui.command(env, &[Path::new(PYTHON).as_os_str(), tool.as_os_str()]);
        cmd.args([APP_NAME, role, name]).args(what);
        let out = run_bounded(&mut cmd, Duration::from_secs(120));
        if out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
            return;
        }
        if Instant::now() >= deadline {
            let shown = gui.dump(env).map_or_else(|e| e, |t| outline(&t));
            panic!(
                "the keyboard did not reach the {role} {name:?}: {}\n--- window\n{shown}\n--- \
                 app log\n{}",
                describe(&out),
                gui.app_log()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn the_editor_is_usable_with_the_keyboard_alone() {
    let env =
        TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    assert_eq!(apply_as_root(&env, "policy.toml", &work_policy(8443)), 1);
    let _listener = listen(&env, &[8444]);
    assert!(
        !connects(&env, "palisade-vm-work", 8444),
        "8444 is open before the edit"
    );
    let mut gui = Gui::start_as(&env, Some(ADMIN), &[]);
    gui.wait_for(&env, "the page switcher", SHOW_TIMEOUT, |t| {
        nodes(t)
            .iter()
            .any(|n| role(n) == "page tab" && name(n) == "Firewall")
    });

    // The page switcher, then the Edit toggle.
    key_on(&mut gui, &env, "page tab", "Firewall", "space");
    gui.wait_for(&env, "the Firewall page", UPDATE_TIMEOUT, |t| {
        shows_label(t, "The live policy, generation 1")
    });
    key_on(&mut gui, &env, "push button", "Edit", "space");
    gui.wait_for(&env, "the editable rules of work", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Rules of work (being edited)")
    });

    // The rule dialog: destination and port typed, Save.
    key_on(&mut gui, &env, "push button", "Add a rule to work", "space");
    gui.wait_for(&env, "the rule dialog", UPDATE_TIMEOUT, |t| {
        shows_label(t, "New rule for work")
    });
    // GTK 4.8 reports no focus on an entry row while its text has it: Tab from the control
    // before it, then type where the focus went; the rule's title below shows where it landed.
    key_on(&mut gui, &env, "combo box", "Destination", "Tab");
    type_here(&mut gui, &env, "127.0.0.1");
    key_on(&mut gui, &env, "combo box", "Protocol", "Tab");
    type_here(&mut gui, &env, "8444");
    gui.wait_for(&env, "Save enabled", UPDATE_TIMEOUT, |t| {
        shows_button(t, "_Save Save")
    });
    key_on(&mut gui, &env, "push button", "_Save Save", "space");
    gui.wait_for(&env, "the new rule in the draft", UPDATE_TIMEOUT, |t| {
        shows_label(t, "1 unsaved change") && shows_label(t, "2. accept tcp 127.0.0.1 port 8444")
    });
    assert_eq!(
        generation(&env),
        1,
        "the draft reached the helper before Apply"
    );

    // Apply, and Keep in the countdown dialog.
    key_on(&mut gui, &env, "push button", "Apply the changes", "space");
    gui.wait_for(&env, "the keep-or-revert dialog", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Keep these settings?")
    });
    key_on(&mut gui, &env, "push button", "_Keep Keep", "space");
    wait_kept(&mut gui, &env);
    let h = history(&env);
    assert_eq!(h[0]["generation"], 2, "{h}");
    assert_eq!(h[0]["state"], "live", "{h}");
    assert!(
        connects(&env, "palisade-vm-work", 8444),
        "the rule added with the keyboard does not let the VM's user connect"
    );
    gui.screenshot(&env, "app-editor-keyboard.png");
    gui.assert_running();
}
