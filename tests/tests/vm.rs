//! Acceptance tests of the Virtual machines issue, with real QEMU (TCG) booting the tiny guest
//! from tests/guest: its serial console reports what it could reach and what its disk held.

mod common;

use common::*;
use palisade_tests::{vm_policy, Signal, TestEnv, ADMIN, ALICE, BOB};
use std::path::Path;
use std::time::Duration;

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

#[test]
fn the_guest_boots_confined_obeys_its_policy_and_forgets_its_disk() {
    let env = start();
    create_work(&env, BOOT_CHECKS);
    let _listener = listen(&env, &[8443, 8444]);

    let first = boot(&env, ALICE, &[]);
    assert!(
        first
            .iter()
            .any(|l| l.starts_with("PALISADE-RESULT dhcp 10.0.2.15")),
        "{first:?}"
    );
    assert!(
        has(&first, "PALISADE-RESULT connect 10.0.2.2:8443 ok"),
        "{first:?}"
    );
    assert!(
        has(&first, "PALISADE-RESULT connect 10.0.2.2:8444 fail"),
        "{first:?}"
    );
    assert!(
        has(&first, "PALISADE-RESULT disk marker absent")
            && has(&first, "PALISADE-RESULT disk write ok"),
        "{first:?}"
    );
    assert!(
        !env.state_dir().join("run/work/overlay.qcow2").exists(),
        "the overlay outlived the run"
    );

    // Ephemeral: what the first run wrote is gone.
    let second = boot(&env, ALICE, &[]);
    assert!(
        has(&second, "PALISADE-RESULT disk marker absent"),
        "{second:?}"
    );

    // Update mode keeps it; promote makes it the base; the old base stays restorable.
    boot(&env, ADMIN, &["--update"]);
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "vm", "promote", "work"]),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"base\": 2"),
        "{}",
        text(&out)
    );
    let third = boot(&env, ALICE, &[]);
    assert!(
        has(&third, "PALISADE-RESULT disk marker present"),
        "{third:?}"
    );
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "vm", "versions", "work"]),
    );
    let versions: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let roles: Vec<(u64, String)> = versions
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
        .unwrap_or_default();
    assert_eq!(roles, vec![(1, "kept".to_owned()), (2, "base".to_owned())]);
    for v in [1, 2] {
        let mode = std::fs::metadata(images(&env).join(format!("v{v}-work.qcow2"))).map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o777
        });
        assert_eq!(mode.ok(), Some(0o444), "version {v} is not read-only");
    }
    ok(
        &env,
        env.palisadectl(Some(ADMIN), &["vm", "restore", "work", "1"]),
    );
    let fourth = boot(&env, ALICE, &[]);
    assert!(
        has(&fourth, "PALISADE-RESULT disk marker absent"),
        "{fourth:?}"
    );
}

#[test]
fn a_running_vm_is_confined_stoppable_takes_usb_and_survives_a_helper_restart() {
    let mut env = start();
    create_work(&env, "pal.stay=1");
    ok(&env, env.palisadectl(Some(ALICE), &["vm", "start", "work"]));
    wait_console(&env, "PALISADE-DONE", Duration::from_secs(120));
    let running = wait_state(&env, "running", Duration::from_secs(10));
    let pid = running["pid"].as_u64().unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or("")
            .to_owned()
    };
    let vm_uid = env
        .uid_of("palisade-vm-work")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        field("Uid:")
            .split_whitespace()
            .skip(1)
            .all(|u| u == vm_uid.to_string()),
        "{}",
        field("Uid:")
    );
    assert_eq!(field("CapEff:"), "CapEff:\t0000000000000000");
    assert_eq!(field("CapPrm:"), "CapPrm:\t0000000000000000");
    assert!(
        field("Seccomp:").ends_with('2'),
        "QEMU runs without its seccomp sandbox: {}",
        field("Seccomp:")
    );

    // The state is also a D-Bus property, readable by the VM's operator.
    let script = "import dbus; o = dbus.SystemBus().get_object('io.palisade.Helper1', '/io/palisade/Helper1', introspect=False); \
                  print({str(k): str(v) for k, v in o.Get('io.palisade.Helper1.Vms', 'States', dbus_interface='org.freedesktop.DBus.Properties').items()})";
    let out = ok(
        &env,
        env.run_as(Some(ALICE), &["/usr/bin/python3", "-c", script]),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("'work': 'running'"),
        "{}",
        text(&out)
    );

    // USB through QMP device_add/device_del, with an emulated device (CI has no real one).
    let out = ok(
        &env,
        env.palisadectl(
            Some(ALICE),
            &[
                "--json",
                "vm",
                "usb",
                "attach",
                "work",
                "emulated:usb-tablet",
            ],
        ),
    );
    let id: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let id = id["id"].as_str().unwrap_or_default().to_owned();
    let listed = ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "usb", "attached", "work"]),
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "usb", "detach", "work", &id]),
    );

    // The helper dies and comes back: the VM keeps running and is adopted.
    env.kill_helper(Signal::SIGKILL)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the VM died with the helper"
    );
    env.start_helper().unwrap_or_else(|e| panic!("{e:#}"));
    let adopted = wait_state(&env, "running", Duration::from_secs(10));
    assert_eq!(adopted["pid"].as_u64(), Some(pid));

    // ACPI power-down reaches the guest.
    ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "stop", "work", "--timeout", "30"]),
    );
    wait_console(&env, "PALISADE-POWERDOWN", Duration::from_secs(5));
    wait_state(&env, "shut down", Duration::from_secs(10));
}

#[test]
fn only_assigned_and_authorized_users_operate_a_vm() {
    let env = start();
    create_work(&env, "pal.stay=1");
    let bob = env.palisadectl(Some(BOB), &["vm", "start", "work"]);
    assert_eq!(bob.status.code(), Some(77), "{}", text(&bob));
    apply(&env, &vm_policy("pal.stay=1", ""), &[]);
    let alice = env.palisadectl(Some(ALICE), &["vm", "start", "work"]);
    assert_eq!(alice.status.code(), Some(77), "{}", text(&alice));
    assert!(
        String::from_utf8_lossy(&alice.stderr).contains("not an operator of work"),
        "{}",
        text(&alice)
    );
    assert_eq!(vm_state(&env)["state"], "shut down");
}

#[test]
fn bad_vm_input_is_refused_and_creates_nothing() {
    let env = start();
    apply(&env, "[settings]\naccel = \"tcg\"\n", &[]);
    let generation = common::generation(&env);
    for (args, needle) in [
        (
            vec!["vm", "create", "w1", "--disk-size", "-1G"],
            "not a disk size",
        ),
        (
            vec!["vm", "create", "w1", "--disk-size", "1E"],
            "not a disk size",
        ),
        (vec!["vm", "create", "a/b"], "not a valid VM name"),
        (vec!["vm", "create", "w1", "--memory", "0"], "0 MiB"),
    ] {
        let out = env.palisadectl(Some(ADMIN), &args);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert!(
        !env.state_dir().join("images/w1").exists(),
        "a refused create left images behind"
    );
    assert_eq!(common::generation(&env), generation);

    create_work(&env, "pal.stay=1");
    let generation = common::generation(&env);
    let link = env.dir().join("shadow.iso");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap_or_else(|e| panic!("{e}"));
    let dir = env.dir().join("folder.iso");
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    for (iso, needle) in [
        (dir.to_string_lossy().into_owned(), "regular file"),
        ("/dev/null".to_owned(), "regular file"),
        (link.to_string_lossy().into_owned(), "symbolic link"),
    ] {
        let out = env.palisadectl(Some(ADMIN), &["vm", "start", "work", "--install", &iso]);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(needle),
            "{iso}: {}",
            text(&out)
        );
    }
    assert_eq!(vm_state(&env)["state"], "shut down");
    assert_eq!(vm_state(&env)["pending_version"], 0);
    let versions = std::fs::read_dir(images(&env))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        versions, 4,
        "an install attempt created an image (v1, versions.json, kernel, initrd)"
    );
    assert_eq!(common::generation(&env), generation);
}

#[test]
fn delete_asks_refuses_drop_in_vms_and_removes_policy_entry_then_images() {
    let env = start();
    create_work(&env, "pal.stay=1");
    // Its console with TLS: a run leaves a certificate, which the delete must take along.
    let tls = vm_policy("pal.stay=1", "\"pal-alice\"").replace(
        "default = \"drop\"\n",
        "default = \"drop\"\ndisplay = { tls = true }\n",
    );
    assert!(tls.contains("tls = true"));
    apply(&env, &tls, &[]);
    // The office's drop-in defines VM lab; the helper never edits drop-ins.
    let dropins = env.config_dir().join("policy.d");
    std::fs::create_dir_all(&dropins).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dropins.join("50-office.toml"),
        "[[vm]]\nname = \"lab\"\nmemory = 256\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ok(&env, env.palisadectl(None, &["policy", "reload"]));
    let generation = common::generation(&env);

    // Not from a terminal and without --yes: nothing happens.
    let unasked = env.palisadectl(Some(ADMIN), &["vm", "delete", "work"]);
    assert!(
        !unasked.status.success() && text(&unasked).contains("give --yes to confirm"),
        "{}",
        text(&unasked)
    );
    // Operating a VM is not enough to delete it.
    let alice = env.palisadectl(Some(ALICE), &["vm", "delete", "work", "--yes"]);
    assert_eq!(alice.status.code(), Some(77), "{}", text(&alice));
    let lab = env.palisadectl(Some(ADMIN), &["vm", "delete", "lab", "--yes"]);
    assert!(
        !lab.status.success() && text(&lab).contains("defined by the drop-in 50-office.toml"),
        "{}",
        text(&lab)
    );
    // A running VM is refused with a sentence.
    ok(&env, env.palisadectl(Some(ALICE), &["vm", "start", "work"]));
    wait_state(&env, "running", Duration::from_secs(60));
    let running = env.palisadectl(Some(ADMIN), &["vm", "delete", "work", "--yes"]);
    assert!(
        !running.status.success()
            && text(&running).contains("work is running: stop it before deleting it"),
        "{}",
        text(&running)
    );
    ok(
        &env,
        env.palisadectl(Some(ADMIN), &["vm", "stop", "work", "--force"]),
    );
    wait_state(&env, "shut down", Duration::from_secs(30));
    assert_eq!(
        common::generation(&env),
        generation,
        "a refusal changed the policy"
    );
    assert!(images(&env).exists());
    let user_exists = || {
        nix::unistd::User::from_name("palisade-vm-work")
            .ok()
            .flatten()
            .is_some()
    };
    assert!(user_exists(), "work ran without its system user");
    let kept = [
        env.state_dir().join("run/work"),
        env.state_dir().join("tls/work"),
    ];
    for dir in &kept {
        assert!(dir.exists(), "{} is missing after a run", dir.display());
    }

    // Deleted: a new generation without work (lab stays), then no images, no runtime folder, no
    // console certificate and no system user.
    let deleted = json_out(&env, ADMIN, &["vm", "delete", "work", "--yes"]);
    assert_eq!(deleted["deleted"], "work", "{deleted}");
    assert_eq!(
        deleted["generation"].as_u64(),
        Some(generation + 1),
        "{deleted}"
    );
    let names: Vec<String> = json_out(&env, ADMIN, &["vm", "list"])
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["lab"]);
    assert!(!images(&env).exists(), "the images of work are still there");
    for dir in &kept {
        assert!(!dir.exists(), "{} is still there", dir.display());
    }
    assert!(
        !user_exists(),
        "the system user palisade-vm-work is still there"
    );
    let local = ok(&env, env.palisadectl(None, &["policy", "show"]));
    assert!(
        !String::from_utf8_lossy(&local.stdout).contains("name = \"work\""),
        "{}",
        text(&local)
    );
}

#[test]
fn nothing_is_hidden_show_and_guest_firewall() {
    let env = start();
    create_work(&env, "pal.stay=1");
    let out = ok(&env, env.palisadectl(Some(ALICE), &["vm", "show", "work"]));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "qemu-system-x86_64",
        "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-nodefaults -no-user-config",
        "chain vm_work",
        "tcp dport 8443",
    ] {
        assert!(shown.contains(needle), "vm show lacks {needle:?}:\n{shown}");
    }
    let out = ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "guest-firewall", "work"]),
    );
    let ruleset = String::from_utf8_lossy(&out.stdout).into_owned();
    // Inside the guest the host's loopback listener is 10.0.2.2.
    assert!(
        ruleset.contains("10.0.2.2") && ruleset.contains("8443"),
        "{ruleset}"
    );
    let file = env
        .write_file("guest.nft", &ruleset)
        .unwrap_or_else(|e| panic!("{e}"));
    ok(&env, env.nft(&["-c", "-f", &file.to_string_lossy()]));
}

/// Ten concurrent starts of one VM launch exactly one QEMU; the others are told it is already
/// starting or running.
#[test]
fn concurrent_starts_launch_one_qemu() {
    let env = start();
    create_work(&env, "pal.stay=1");
    let outcomes: Vec<std::process::Output> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..10)
            .map(|_| scope.spawn(|| env.palisadectl(Some(ALICE), &["vm", "start", "work"])))
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| panic!("a start panicked")))
            .collect()
    });
    let started = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        started,
        1,
        "{:#?}",
        outcomes.iter().map(text).collect::<Vec<_>>()
    );
    for refused in outcomes.iter().filter(|o| !o.status.success()) {
        assert_eq!(refused.status.code(), Some(75), "{}", text(refused));
        assert!(text(refused).contains("already"), "{}", text(refused));
    }
    let vm_uid = env
        .uid_of("palisade-vm-work")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let qemus = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    let owner = std::fs::metadata(e.path())
                        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                        .ok();
                    comm.starts_with("qemu") && owner == Some(vm_uid)
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(qemus, 1, "QEMU processes of the VM's user");
    ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "stop", "work", "--force"]),
    );
}

/// Everything under `dir` that is world-writable, owned by someone other than root or `vm_uid`,
/// or a symbolic link (the helper, as root, would follow it): one line each.
fn unsafe_entries(dir: &std::path::Path, vm_uid: u32) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // gone while walking (a socket closed)
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            found.push(format!("{}: a symbolic link", path.display()));
            continue;
        }
        // A socket's mode does not guard it (its folder does), but a world-writable one is
        // still worth knowing about; the folders and files are what this is about.
        if meta.mode() & 0o002 != 0 && !kind.is_socket() {
            found.push(format!(
                "{}: world-writable ({:o})",
                path.display(),
                meta.mode() & 0o7777
            ));
        }
        if meta.uid() != 0 && meta.uid() != vm_uid {
            found.push(format!("{}: owned by uid {}", path.display(), meta.uid()));
        }
        if kind.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                todo.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    found
}

#[test]
fn state_runtime_and_config_folders_hold_nothing_writable_foreign_or_linked() {
    let env = start();
    // The walk itself finds each kind of problem.
    let control = env.dir().join("walk-control");
    std::fs::create_dir_all(&control).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("/etc/shadow", control.join("link"))
        .unwrap_or_else(|e| panic!("{e}"));
    let open = control.join("open");
    std::fs::write(&open, "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .unwrap_or_else(|e| panic!("{e}"));
    let foreign = control.join("foreign");
    std::fs::write(&foreign, "x").unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::chown(&foreign, Some(65_534), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unsafe_entries(&control, 0).len(),
        3,
        "{:?}",
        unsafe_entries(&control, 0)
    );
    create_work(&env, "pal.stay=1");
    let list = env
        .write_file("list.txt", "203.0.113.0/24\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&list, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    ok(
        &env,
        env.palisadectl(
            Some(ADMIN),
            &["blocklist", "import", "walk", &list.to_string_lossy()],
        ),
    );
    ok(&env, env.palisadectl(Some(ALICE), &["vm", "start", "work"]));
    wait_state(&env, "running", Duration::from_secs(60));
    let vm_uid = env
        .uid_of("palisade-vm-work")
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut found = Vec::new();
    for dir in [env.state_dir(), env.config_dir()] {
        found.extend(unsafe_entries(dir, vm_uid));
    }
    assert!(found.is_empty(), "while the VM runs:\n{}", found.join("\n"));
    // The folders themselves are closed to other users.
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(env.state_dir())
        .map(|m| m.mode() & 0o777)
        .unwrap_or(0o777);
    assert_eq!(
        mode & 0o077,
        0,
        "the state folder is open to others: {mode:o}"
    );
    ok(
        &env,
        env.palisadectl(Some(ALICE), &["vm", "stop", "work", "--force"]),
    );
    wait_state(&env, "shut down", Duration::from_secs(30));
    let after: Vec<String> = [env.state_dir(), env.config_dir()]
        .into_iter()
        .flat_map(|d| unsafe_entries(d, vm_uid))
        .collect();
    assert!(
        after.is_empty(),
        "after the VM stopped:\n{}",
        after.join("\n")
    );
}

#[test]
fn a_bridged_vm_is_created_listed_and_shown_like_a_slirp_one() {
    let env = start();
    apply(&env, LAB_NETWORK, &[]);
    let created = ok(
        &env,
        env.palisadectl(
            Some(ADMIN),
            &[
                "--json",
                "vm",
                "create",
                "lab1",
                "--disk-size",
                "16M",
                "--memory",
                "256M",
                "--cpus",
                "1",
                "--bridge",
                "lab",
                "--address",
                "10.77.0.20",
                "--nat",
                "192.0.2.20",
                "--forward",
                "tcp:2222:22",
            ],
        ),
    );
    let created: serde_json::Value =
        serde_json::from_slice(&created.stdout).unwrap_or_else(|e| panic!("{e}"));
    let generation = common::generation(&env);
    assert_eq!(created["generation"].as_u64(), Some(generation));
    assert!(
        env.state_dir().join("images/lab1").is_dir(),
        "no image folder for lab1"
    );

    // The policy says it as a file would.
    let out = ok(&env, env.palisadectl(Some(ADMIN), &["policy", "show"]));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "network = \"bridge\"",
        "bridge = \"lab\"",
        "address = \"10.77.0.20\"",
        "192.0.2.20",
    ] {
        assert!(shown.contains(needle), "{needle}:\n{shown}");
    }

    // The list carries the network, typed.
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "vm", "list"]),
    );
    let vms: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let lab1 = vms
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "lab1").cloned())
        .unwrap_or_else(|| panic!("lab1 not listed: {vms}"));
    assert_eq!(lab1["network"], lab1_network(), "{lab1}");
    let mac = lab1["network"]["mac"].as_str().unwrap_or_default();
    assert_eq!(lab1["state"], "shut down");
    let out = ok(&env, env.palisadectl(Some(ADMIN), &["vm", "list"]));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.lines().next().is_some_and(|l| l.contains("NETWORK"))
            && table
                .lines()
                .any(|l| l.starts_with("lab1 ") && l.ends_with("lab 10.77.0.20 via 192.0.2.20")),
        "{table}"
    );

    // vm show names every field, the forward as it works.
    let out = ok(&env, env.palisadectl(Some(ADMIN), &["vm", "show", "lab1"]));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for needle in [
        "Mode: bridge",
        "Lab network: lab",
        "Address: 10.77.0.20",
        &format!("MAC: {mac}"),
        "NAT: 192.0.2.20",
        "Forwarded: tcp 192.0.2.20:2222 -> 10.77.0.20:22",
    ] {
        assert!(shown.contains(needle), "vm show lacks {needle:?}:\n{shown}");
    }

    // An address outside the network is refused with the sentence a policy file gets, and
    // nothing changes.
    let file = env
        .write_file(
            "bad-lab.toml",
            format!(
                "{LAB_NETWORK}\n[[vm]]\nname = \"lab2\"\nnetwork = \"bridge\"\nbridge = \"lab\"\n\
                 address = \"10.99.0.5\"\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let offline = env.palisadectl(
        Some(ADMIN),
        &[
            "policy",
            "validate",
            "--offline",
            file.to_string_lossy().as_ref(),
        ],
    );
    let offline = String::from_utf8_lossy(&offline.stdout).into_owned();
    let sentence = offline
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .filter(|s| s.starts_with("vm[lab2].address: 10.99.0.5 "))
        .unwrap_or_else(|| panic!("no finding for the address:\n{offline}"))
        .to_owned();
    let refused = env.palisadectl(
        Some(ADMIN),
        &[
            "vm",
            "create",
            "lab2",
            "--disk-size",
            "16M",
            "--bridge",
            "lab",
            "--address",
            "10.99.0.5",
        ],
    );
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains(&sentence),
        "{sentence}\n{}",
        text(&refused)
    );
    assert_eq!(common::generation(&env), generation);
    assert!(
        !env.state_dir().join("images/lab2").exists(),
        "a refused create left images behind"
    );
    let out = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["--json", "vm", "list"]),
    );
    let vms: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        vms.as_array()
            .is_some_and(|a| a.iter().all(|v| v["name"] != "lab2")),
        "{vms}"
    );
}
