//! End-to-end tests of the app's machines for admins and users (issue 11): the real `palisade`
//! window under Xvfb, driven over AT-SPI as `app.rs` explains, against the real helper and QEMU
//! booting the tiny guest (tests/guest).
//!
//! The admin creates a VM with an installer ISO chosen in GTK's own file chooser (no portal
//! under Xvfb: the location entry is opened with Ctrl+L through xdotool, since nothing in the
//! chooser's accessible tree opens it, and the path is typed over AT-SPI). The ISO is built here
//! from the tiny guest (`build_installer_iso`): its boot entry writes a marker to the new disk
//! and powers off; the next ephemeral start, whose policy boots the tiny guest's kernel directly
//! with `pal.disk=read`, reads it. The ISO sits in the admin's private home; root could read it
//! too, so the proof that the helper gets a descriptor is the contract itself: `Vms.Install`
//! takes nothing else. Then versions (promote, discard, restore), the installer booted again
//! from the Manage dialog, and delete, each checked with `palisadectl`. An operator (alice) sees only her machines, no admin controls, and a USB menu.
//!
//! Needs what `app.rs` needs, plus xorriso, isolinux, syslinux-common and xdotool
//! (`tests/scripts/deps.sh`).

mod common;
mod gui;

use common::*;
use gui::*;
use palisade_tests::{account, build_installer_iso, vm_policy_with, TestEnv, ADMIN, ALICE};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

/// How long a boot of the tiny guest may take under TCG on a busy machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

/// `palisadectl --json vm versions work` as (version, role) pairs.
fn versions(env: &TestEnv) -> Vec<(u64, String)> {
    json_out(env, ADMIN, &["vm", "versions", "work"])
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    (
                        v["version"].as_u64().unwrap_or(0),
                        v["role"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `palisadectl vm versions work` reads `wanted`.
#[track_caller]
fn wait_versions(env: &TestEnv, wanted: &[(u64, &str)]) {
    let wanted: Vec<(u64, String)> = wanted.iter().map(|(v, r)| (*v, (*r).to_owned())).collect();
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    loop {
        let now = versions(env);
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the versions are {now:?}, not {wanted:?}\n{}",
            env.helper_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The console log's PALISADE lines from a fresh start on (the log is rewritten at each start).
fn wait_console_lines(env: &TestEnv, marker: &str) -> Vec<String> {
    wait_console(env, marker, BOOT_TIMEOUT)
}

/// Waits until `palisadectl vm list` shows `work` with `field` = `value`.
#[track_caller]
fn wait_work(env: &TestEnv, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let v = vm_state(env);
        if check(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "work never became {what}: {v}\n{}",
            env.helper_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn an_admin_creates_a_vm_from_an_iso_and_manages_its_versions_and_deletion() {
    let env = start();
    apply(&env, "[settings]\naccel = \"tcg\"\n", &[]);
    let mut gui = Gui::start_as(&env, Some(ADMIN), &[]);

    // The installer ISO, readable by the admin alone (and root).
    let admin = account(ADMIN).unwrap_or_else(|e| panic!("{e:#}"));
    let iso = gui.dir.join("home/installer.iso");
    build_installer_iso(&iso).unwrap_or_else(|e| panic!("building the installer ISO: {e:#}"));
    std::os::unix::fs::chown(&iso, Some(admin.uid), Some(admin.gid))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&iso, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));

    // Create: the form judges each field with the contract's rules as it is typed.
    gui.click(
        &env,
        "push button",
        "Create a virtual machine…",
        SHOW_TIMEOUT,
    );
    gui.set_text(&env, "text", "Name", "work", UPDATE_TIMEOUT);
    gui.set_text(&env, "text", "Memory", "2X", UPDATE_TIMEOUT);
    gui.wait_for(&env, "the memory's problem", UPDATE_TIMEOUT, |t| {
        shows_label_containing(t, "Memory: write memory in MiB")
    });
    gui.set_text(&env, "text", "Memory", "256M", UPDATE_TIMEOUT);
    gui.set_text(&env, "text", "Disk size", "16M", UPDATE_TIMEOUT);
    gui.set_text(&env, "text", "CPUs", "1", UPDATE_TIMEOUT);
    gui.click(
        &env,
        "push button",
        "Choose the installer ISO",
        UPDATE_TIMEOUT,
    );
    choose_file(&mut gui, &env, "Choose an Installer ISO", &iso);
    gui.wait_for(&env, "the chosen ISO", UPDATE_TIMEOUT, |t| {
        row_values(t, "Installer ISO")
            .iter()
            .any(|v| v.ends_with("installer.iso"))
    });
    gui.click(&env, "push button", "Create", UPDATE_TIMEOUT);

    // The installer boots from the CD, writes its marker and powers off: version 2 waits.
    wait_console_lines(&env, "PALISADE-DONE");
    let installed = wait_work(&env, "installed", |v| {
        v["state"] == "shut down" && v["pending_version"] == 2
    });
    assert_eq!(installed["base_version"], 1, "{installed}");
    let lines = wait_console_lines(&env, "PALISADE-DONE");
    assert!(has(&lines, "PALISADE-RESULT disk write ok"), "{lines:?}");
    gui.wait_for(&env, "work with its waiting version", UPDATE_TIMEOUT, |t| {
        machine_rows(t) == ["work"]
            && shows_label_containing(t, "Version 2 waits: promote it to keep it")
    });

    // From now on the policy boots the tiny guest's kernel directly, reading the disk.
    palisade_tests::install_guest_kernel(&env, "work").unwrap_or_else(|e| panic!("{e:#}"));
    apply(
        &env,
        &vm_policy_with(
            "pal.net=0 pal.disk=read pal.stay=1",
            "\"pal-alice\"",
            "",
            "",
        ),
        &[],
    );

    // Promote in the app.
    gui.click(&env, "push button", "Manage work", UPDATE_TIMEOUT);
    gui.click(
        &env,
        "push button",
        "Promote version 2 of work",
        UPDATE_TIMEOUT,
    );
    wait_versions(&env, &[(1, "kept"), (2, "base")]);

    // The next ephemeral start sees what the installer wrote.
    ok(&env, env.palisadectl(Some(ADMIN), &["vm", "start", "work"]));
    let lines = wait_console_lines(&env, "PALISADE-DONE");
    assert!(
        has(&lines, "PALISADE-RESULT disk marker present")
            && has(&lines, "PALISADE-RESULT disk tag installed"),
        "{lines:?}"
    );
    wait_work(&env, "running", |v| v["state"] == "running");

    // A running VM is not deleted: the helper's sentence is shown, and nothing is lost.
    gui.click(&env, "push button", "Delete work", UPDATE_TIMEOUT);
    gui.wait_for(&env, "the confirmation", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Delete work?")
    });
    gui.click(&env, "push button", "_Delete Delete", UPDATE_TIMEOUT);
    gui.wait_for(&env, "the refusal", UPDATE_TIMEOUT, |t| {
        shows_label_containing(t, "Work is running: stop it before deleting it")
    });
    assert!(images(&env).exists());
    assert_eq!(vm_state(&env)["name"], "work");
    ok(
        &env,
        env.palisadectl(Some(ADMIN), &["vm", "stop", "work", "--timeout", "30"]),
    );
    wait_work(&env, "shut down", |v| v["state"] == "shut down");

    // Update mode from the app, then discard what it wrote.
    gui.click(
        &env,
        "push button",
        "Start work in update mode",
        UPDATE_TIMEOUT,
    );
    wait_work(&env, "running in update mode", |v| {
        v["state"] == "running" && v["mode"] == "update"
    });
    wait_console_lines(&env, "PALISADE-DONE");
    ok(
        &env,
        env.palisadectl(Some(ADMIN), &["vm", "stop", "work", "--timeout", "30"]),
    );
    wait_work(&env, "shut down with version 3 waiting", |v| {
        v["state"] == "shut down" && v["pending_version"] == 3
    });
    gui.click(
        &env,
        "push button",
        "Discard version 3 of work",
        UPDATE_TIMEOUT,
    );
    wait_versions(&env, &[(1, "kept"), (2, "base")]);

    // The installer once more, from the Manage dialog: the chosen ISO boots with a copy of the
    // base as a new version, which waits once the installer has powered off; discarded here.
    gui.click(
        &env,
        "push button",
        "Install work from an ISO",
        UPDATE_TIMEOUT,
    );
    choose_file(&mut gui, &env, "Choose an Installer ISO", &iso);
    let reinstalled = wait_work(&env, "installed again", |v| {
        v["state"] == "shut down" && v["pending_version"].as_u64().is_some_and(|p| p > 2)
    });
    let pending = reinstalled["pending_version"].as_u64().unwrap_or_default();
    let lines = wait_console_lines(&env, "PALISADE-DONE");
    assert!(has(&lines, "PALISADE-RESULT disk write ok"), "{lines:?}");
    gui.click(
        &env,
        "push button",
        &format!("Discard version {pending} of work"),
        UPDATE_TIMEOUT,
    );
    wait_versions(&env, &[(1, "kept"), (2, "base")]);

    // Restore the empty first version.
    gui.click(
        &env,
        "push button",
        "Restore version 1 of work",
        UPDATE_TIMEOUT,
    );
    wait_versions(&env, &[(1, "base"), (2, "kept")]);

    // Delete, confirmed: gone from the policy, the list and the disk.
    gui.click(&env, "push button", "Delete work", UPDATE_TIMEOUT);
    gui.wait_for(&env, "the confirmation", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Delete work?")
    });
    gui.click(&env, "push button", "_Delete Delete", UPDATE_TIMEOUT);
    gui.wait_for(&env, "no machines", UPDATE_TIMEOUT, |t| {
        machine_rows(t).is_empty() && shows_label(t, "No machines yet")
    });
    let listed = json_out(&env, ADMIN, &["vm", "list"]);
    assert_eq!(listed, serde_json::json!([]), "{listed}");
    assert!(!images(&env).exists(), "the images of work are still there");
    gui.assert_running();
}

#[test]
fn an_admin_creates_a_bridged_vm_with_its_nat_in_the_dialog() {
    let env = start();
    apply(&env, LAB_NETWORK, &[]);
    let generation = generation(&env);
    let mut gui = Gui::start_as(&env, Some(ADMIN), &[]);
    gui.click(
        &env,
        "push button",
        "Create a virtual machine…",
        SHOW_TIMEOUT,
    );
    gui.set_text(&env, "text", "Name", "lab1", UPDATE_TIMEOUT);
    gui.set_text(&env, "text", "Disk size", "16M", UPDATE_TIMEOUT);
    gui.set_text(&env, "text", "Memory", "256M", UPDATE_TIMEOUT);
    gui.set_text(&env, "text", "CPUs", "1", UPDATE_TIMEOUT);
    // Naming a lab network asks for the VM's address there; its shape is judged as typed.
    gui.set_text(&env, "text", "Lab network", "lob", UPDATE_TIMEOUT);
    gui.set_text(
        &env,
        "text",
        "Address on the lab network",
        "10.77.0",
        UPDATE_TIMEOUT,
    );
    gui.wait_for(&env, "the address's problem", UPDATE_TIMEOUT, |t| {
        shows_label_containing(t, "Address on the lab network: Write the VM's IPv4 address")
    });
    gui.set_text(
        &env,
        "text",
        "Address on the lab network",
        "10.77.0.20",
        UPDATE_TIMEOUT,
    );
    gui.set_text(&env, "text", "NAT address", "192.0.2.20", UPDATE_TIMEOUT);
    gui.set_text(
        &env,
        "text",
        "Forwarded ports",
        "tcp:2222:22",
        UPDATE_TIMEOUT,
    );

    // A network the policy does not have: the helper's sentence, in the dialog; nothing made.
    gui.click(&env, "push button", "Create", UPDATE_TIMEOUT);
    gui.wait_for(&env, "the helper's refusal", UPDATE_TIMEOUT, |t| {
        shows_label_containing(t, "no [[network]] named lob")
    });
    assert_eq!(
        common::generation(&env),
        generation,
        "a refusal changed the policy"
    );
    assert!(!env.state_dir().join("images/lab1").exists());

    // Fixed: created on the lab network, with its NAT, and listed so.
    gui.set_text(&env, "text", "Lab network", "lab", UPDATE_TIMEOUT);
    gui.click(&env, "push button", "Create", UPDATE_TIMEOUT);
    let lines = [
        "Shut down",
        "Bridged to lab network lab, address 10.77.0.20",
        "Reachable at 192.0.2.20 (tcp 2222 → 22)",
    ];
    gui.wait_for(&env, "lab1 with its network", UPDATE_TIMEOUT, |t| {
        machine_rows(t) == ["lab1"]
            && row_values(t, "lab1")
                .iter()
                .any(|v| v.lines().eq(lines.iter().copied()))
    });
    let listed = json_out(&env, ADMIN, &["vm", "list"]);
    assert_eq!(listed[0]["network"], lab1_network(), "{listed}");
    gui.assert_running();
}

#[test]
fn an_operator_sees_her_machines_and_a_usb_menu_but_no_admin_controls() {
    let env = start();
    create_work(&env, "pal.net=0 pal.stay=1");
    // A second VM she does not operate (it needs no disk to be listed, only to start).
    apply(
        &env,
        &vm_policy_with(
            "pal.net=0 pal.stay=1",
            "\"pal-alice\"",
            "",
            "\n[[vm]]\nname = \"banking\"\noperators = { users = [\"pal-bob\"] }\n",
        ),
        &[],
    );
    let mut gui = Gui::start_as(&env, Some(ALICE), &[]);
    let tree = gui.wait_for(&env, "her one machine", SHOW_TIMEOUT, |t| {
        machine_rows(t) == ["work"] && shows_button(t, "Start work")
    });
    for admin_only in ["Create a virtual machine…", "Manage work"] {
        assert!(!has_button(&tree, admin_only), "{}", outline(&tree));
    }

    gui.click(&env, "push button", "Start work", UPDATE_TIMEOUT);
    wait_console_lines(&env, "PALISADE-DONE");
    wait_work(&env, "running", |v| v["state"] == "running");

    // The USB menu lists the emulated devices; ticking one attaches it, unticking detaches.
    gui.click(&env, "push button", "USB devices of work", UPDATE_TIMEOUT);
    gui.click(
        &env,
        "push button",
        "Virtual tablet (emulated)",
        UPDATE_TIMEOUT,
    );
    let attached = |env: &TestEnv| -> Vec<String> {
        json_out(env, ALICE, &["vm", "usb", "attached", "work"])
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| d["description"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    while attached(&env) != ["usb-tablet"] {
        assert!(
            Instant::now() < deadline,
            "the tablet was not attached: {:?}\n{}",
            attached(&env),
            gui.app_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The menu reads the VM again after the change: the box stays ticked, and unticking detaches.
    std::thread::sleep(Duration::from_secs(1));
    gui.click(
        &env,
        "push button",
        "Virtual tablet (emulated)",
        UPDATE_TIMEOUT,
    );
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    while !attached(&env).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the tablet was not detached: {:?}\n{}",
            attached(&env),
            gui.app_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "stop", "work", "--force"]),
    );
    wait_work(&env, "shut down", |v| v["state"] == "shut down");
    gui.assert_running();
}
