//! Acceptance tests of the labs issue: a helper-owned bridge with lab guests on its ports, DNAT
//! in and SNAT out through the very same host address (with another manager's masquerade in
//! place), the VMs' own rules on what they start, port guards against ARP and address spoofing
//! whose drops reach the drop log, and our tables untouched by other managers' tables.
//!
//! Guests are network namespaces on veth ports named like the VM's port (`palt-HASH`) on the
//! bridge, with the VM's MAC and address; the "outside" is one more namespace on an uplink that
//! carries the host addresses. Every connection is real and every check looks at what arrived.

mod common;

use common::*;
use palisade_dbus::policy::lab::port_name;
use palisade_tests::lab::{Lab, HOST_PRIMARY, OUTSIDE};
use palisade_tests::{describe, run_bounded, Netns, TestEnv, ADMIN, ALICE};
use std::io::{BufRead, BufReader};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

fn start() -> TestEnv {
    TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"))
}

/// The lab: VM trap has a NAT address with port 2222 forwarded to its 22 and may reach the
/// outside's port 8080; plain (masqueraded) may too; evil may start nothing.
const LAB: &str = r#"
[[network]]
name = "lab"
subnet = "10.77.0.0/24"
address = "10.77.0.1"

[[vm]]
name = "trap"
network = "bridge"
bridge = "lab"
address = "10.77.0.10"
mac = "52:54:00:00:00:10"
default = "drop"
[vm.nat]
address = "192.0.2.10"
[[vm.nat.forward]]
proto = "tcp"
port = 2222
to_port = 22

[[vm.rule]]
action = "accept"
destination = "192.0.2.99"
proto = "tcp"
ports = 8080

[[vm]]
name = "plain"
network = "bridge"
bridge = "lab"
address = "10.77.0.11"
mac = "52:54:00:00:00:11"
default = "drop"

[[vm.rule]]
action = "accept"
destination = "192.0.2.99"
proto = "tcp"
ports = 8080

[[vm]]
name = "evil"
network = "bridge"
bridge = "lab"
address = "10.77.0.12"
mac = "52:54:00:00:00:12"
default = "drop"
"#;

/// (VM, address, MAC) of the namespace guests.
const GUESTS: [(&str, &str, &str); 3] = [
    ("trap", "10.77.0.10", "52:54:00:00:00:10"),
    ("plain", "10.77.0.11", "52:54:00:00:00:11"),
    ("evil", "10.77.0.12", "52:54:00:00:00:12"),
];

/// The namespace of guest `vm`.
fn guest<'a>(lab: &'a Lab, vm: &str) -> &'a Netns {
    lab.guest(vm).unwrap_or_else(|| panic!("no guest {vm}"))
}

/// `python3 TOOL ARGS` as root in `ns`, bounded.
fn tool_in(ns: &Netns, tool: &str, args: &[&str]) -> Output {
    let path = palisade_tests::workspace_dir()
        .join("tests/tools")
        .join(tool);
    let mut argv = vec![
        "/usr/bin/python3".to_owned(),
        path.to_string_lossy().into_owned(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    run_bounded(&mut ns.command(&argv), Duration::from_secs(20))
}

/// Asks the `whoami` server at `host`:`port` from `ns`: the address it saw us come from, or
/// `None` when no connection was made.
fn peer_seen(ns: &Netns, host: &str, port: u16) -> Option<String> {
    let out = tool_in(ns, "netcheck.py", &["ask", host, &port.to_string()]);
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match line.strip_prefix("peer ") {
        Some(peer) if out.status.success() => Some(peer.to_owned()),
        _ => {
            assert!(
                line.starts_with("failed"),
                "netcheck ask: {}",
                describe(&out)
            );
            None
        }
    }
}

/// A `whoami` server on `addr`:`port` in `ns` (`listen-on` for an echo server); its stdout
/// lines after "ready" come through the channel.
struct Server {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(ns: &Netns, kind: &str, addr: &str, port: u16) -> Server {
        let path = palisade_tests::workspace_dir().join("tests/tools/netcheck.py");
        let argv = [
            "/usr/bin/python3".to_owned(),
            path.to_string_lossy().into_owned(),
            kind.to_owned(),
            addr.to_owned(),
            port.to_string(),
        ];
        let mut child = ns
            .command(&argv)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        assert_eq!(first, "ready", "{kind} {addr}:{port} did not start");
        Server { child, lines }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nft -f -` of `script` as root in the helper's namespace (another manager's tables).
fn foreign_nft(env: &TestEnv, script: &str) {
    let path = env
        .write_file("foreign.nft", script)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = env.nft(&["-f", &path.to_string_lossy()]);
    assert!(out.status.success(), "nft {script}: {}", text(&out));
}

/// The MAC `ns`'s eth0 holds for `address`, as `ip neigh` reports it (empty when none).
fn neighbour(ns: &Netns, address: &str) -> String {
    let out = run_bounded(
        Command::new("ip").args(["-n", ns.name(), "neigh", "show", address, "dev", "eth0"]),
        Duration::from_secs(10),
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Evil, on its own port, says "10.77.0.11 is at my MAC" to trap and to everyone.
fn spoof_plain(lab: &Lab) {
    let evil = guest(lab, "evil");
    for (target_mac, target_ip) in [
        ("52:54:00:00:00:10", "10.77.0.10"),
        ("ff:ff:ff:ff:ff:ff", "10.77.0.11"),
    ] {
        let out = tool_in(
            evil,
            "lab_frames.py",
            &[
                "arp",
                "eth0",
                "52:54:00:00:00:12",
                "10.77.0.11",
                target_mac,
                target_ip,
            ],
        );
        assert!(out.status.success(), "lab_frames: {}", describe(&out));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// Trap reaches plain (a fresh neighbour entry for it first), then waits out the kernel's ARP
/// lock time so a later answer could replace the entry.
fn trap_knows_plain(lab: &Lab) {
    assert_eq!(
        peer_seen(guest(lab, "trap"), "10.77.0.11", 7).as_deref(),
        Some("10.77.0.10"),
        "trap cannot reach plain on the bridge"
    );
    assert_eq!(
        neighbour(guest(lab, "trap"), "10.77.0.11"),
        "52:54:00:00:00:11"
    );
    std::thread::sleep(Duration::from_millis(1_200));
}

#[test]
fn dnat_in_and_snat_out_through_the_same_address_despite_a_foreign_masquerade() {
    let env = start();
    apply(&env, LAB, &[]);
    let lab = &Lab::wire(&env, &GUESTS).unwrap_or_else(|e| panic!("{e:#}"));
    // A libvirt-like manager masquerades everything leaving the uplink (it would pick
    // 192.0.2.5, the uplink's first address).
    foreign_nft(
        &env,
        "table ip libvirt_like {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat;\n\
         \t\toifname \"uplink\" masquerade\n\t}\n}\n",
    );
    let _web = Server::start(&lab.outside, "whoami", OUTSIDE, 8080);
    let _other = Server::start(&lab.outside, "whoami", OUTSIDE, 8081);
    let _ssh = Server::start(guest(lab, "trap"), "whoami", "10.77.0.10", 22);
    let _plain = Server::start(guest(lab, "plain"), "whoami", "10.77.0.11", 7);

    // Out: trap leaves from its own NAT address; plain, without one, is masqueraded.
    assert_eq!(
        peer_seen(guest(lab, "trap"), OUTSIDE, 8080).as_deref(),
        Some("192.0.2.10"),
        "{}",
        table_raw(&env)
    );
    assert_eq!(
        peer_seen(guest(lab, "plain"), OUTSIDE, 8080).as_deref(),
        Some(HOST_PRIMARY)
    );
    // In: 192.0.2.10:2222 reaches trap's 22 with the caller's own address, and the answer
    // comes back although trap may start nothing to the outside but port 8080.
    assert_eq!(
        peer_seen(&lab.outside, "192.0.2.10", 2222).as_deref(),
        Some(OUTSIDE)
    );
    // Egress lockdown: what the VM's rules do not list is dropped; evil may start nothing.
    assert_eq!(peer_seen(guest(lab, "trap"), OUTSIDE, 8081), None);
    assert_eq!(peer_seen(guest(lab, "evil"), OUTSIDE, 8080), None);
    assert!(
        named_counter(&env, "c_vm_trap_default_12f4e7c9").0 > 0,
        "trap's default drop did not count"
    );
    // Nothing comes into the lab that our DNAT did not send: plain's address directly is shut.
    assert_eq!(peer_seen(&lab.outside, "10.77.0.11", 7), None);
    // Guests on the bridge reach each other (the lab's own traffic is theirs).
    assert_eq!(
        peer_seen(guest(lab, "trap"), "10.77.0.11", 7).as_deref(),
        Some("10.77.0.10")
    );

    // A port-forward does not slip past the host's own firewall: another table's forward drop
    // still decides (an accept in our chain ends only our chain).
    foreign_nft(
        &env,
        "table inet hostwall {\n\tchain filter_forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\
         \t\ttcp dport 22 drop\n\t}\n}\n",
    );
    assert_eq!(peer_seen(&lab.outside, "192.0.2.10", 2222), None);
    ok(&env, env.nft(&["delete", "table", "inet", "hostwall"]));
    assert_eq!(
        peer_seen(&lab.outside, "192.0.2.10", 2222).as_deref(),
        Some(OUTSIDE)
    );
}

#[test]
fn spoofed_arp_mac_and_address_are_dropped_and_logged_naming_the_vm() {
    let env = start();
    apply(&env, LAB, &[]);
    let lab = &Lab::wire(&env, &GUESTS).unwrap_or_else(|e| panic!("{e:#}"));
    let follower = Follower::start(&env, ADMIN, None);
    let _plain = Server::start(guest(lab, "plain"), "whoami", "10.77.0.11", 7);
    trap_knows_plain(lab);

    // ARP man-in-the-middle: evil claims plain's address, to trap and to everyone.
    spoof_plain(lab);
    assert_eq!(
        neighbour(guest(lab, "trap"), "10.77.0.11"),
        "52:54:00:00:00:11",
        "trap's traffic for plain was redirected"
    );
    assert_eq!(
        peer_seen(guest(lab, "trap"), "10.77.0.11", 7).as_deref(),
        Some("10.77.0.10")
    );
    let arp = follower
        .wait_for(Duration::from_secs(5), |e| {
            e["rule"]["kind"] == "spoofing" && e["protocol"] == "arp"
        })
        .unwrap_or_else(|| panic!("no ARP spoofing in the log"));
    assert_eq!(
        (arp["vm"].as_str(), arp["rule"]["vm"].as_str()),
        (Some("evil"), Some("evil"))
    );
    assert_eq!(arp["source"], "10.77.0.11");
    assert_eq!(arp["source_mac"], "52:54:00:00:00:12");

    // A frame from another MAC, and a packet from another address.
    let evil = guest(lab, "evil");
    let forged_mac = tool_in(
        evil,
        "lab_frames.py",
        &[
            "udp",
            "eth0",
            "52:54:00:66:66:66",
            "10.77.0.12",
            "ff:ff:ff:ff:ff:ff",
            "10.77.0.1",
            "9",
        ],
    );
    assert!(forged_mac.status.success(), "{}", describe(&forged_mac));
    let e = follower
        .wait_for(Duration::from_secs(5), |e| {
            e["rule"]["kind"] == "spoofing" && e["source_mac"] == "52:54:00:66:66:66"
        })
        .unwrap_or_else(|| panic!("no forged MAC in the log"));
    assert_eq!(e["vm"], "evil");
    let forged_ip = tool_in(
        evil,
        "lab_frames.py",
        &[
            "udp",
            "eth0",
            "52:54:00:00:00:12",
            "10.77.0.99",
            "ff:ff:ff:ff:ff:ff",
            "10.77.0.1",
            "9",
        ],
    );
    assert!(forged_ip.status.success(), "{}", describe(&forged_ip));
    let e = follower
        .wait_for(Duration::from_secs(5), |e| {
            e["rule"]["kind"] == "spoofing" && e["source"] == "10.77.0.99"
        })
        .unwrap_or_else(|| panic!("no forged address in the log"));
    assert_eq!(
        (e["vm"].as_str(), e["protocol"].as_str()),
        (Some("evil"), Some("udp"))
    );
    let log = ok(
        &env,
        env.palisadectl(Some(ADMIN), &["log", "show", "--vm", "evil"]),
    );
    assert!(
        text(&log).contains("from vm evil (52:54:00:66:66:66)")
            && text(&log).contains("port guard"),
        "{}",
        text(&log)
    );

    // Every dropped frame counted in the guard's counter (six ARP, three of each forgery).
    let counters = json_out(&env, ADMIN, &["log", "counters", "--vm", "evil"]);
    let guard = counters
        .as_array()
        .and_then(|all| all.iter().find(|c| c["rule"]["kind"] == "spoofing"))
        .unwrap_or_else(|| panic!("no port guard counter: {counters}"));
    assert!(guard["packets"].as_u64() >= Some(12), "{guard}");
    assert_eq!(guard["rule"]["vm"], "evil");

    // The control: without our port guards the same attempt does redirect trap's traffic, so
    // what kept it out above was the guard.
    ok(&env, env.nft(&["delete", "table", "bridge", "palisade"]));
    spoof_plain(lab);
    assert_eq!(
        neighbour(guest(lab, "trap"), "10.77.0.11"),
        "52:54:00:00:00:12"
    );
}

#[test]
fn other_managers_tables_come_and_go_around_ours_and_ours_still_enforce() {
    let env = start();
    apply(&env, LAB, &[]);
    let lab = &Lab::wire(&env, &GUESTS).unwrap_or_else(|e| panic!("{e:#}"));
    let _other = Server::start(&lab.outside, "whoami", OUTSIDE, 8081);
    let _ssh = Server::start(guest(lab, "trap"), "whoami", "10.77.0.10", 22);
    let _plain = Server::start(guest(lab, "plain"), "whoami", "10.77.0.11", 7);
    let enforced = |when: &str| {
        trap_knows_plain(lab);
        spoof_plain(lab);
        assert_eq!(
            neighbour(guest(lab, "trap"), "10.77.0.11"),
            "52:54:00:00:00:11",
            "{when}: the ARP spoof got through"
        );
        assert_eq!(
            peer_seen(guest(lab, "trap"), OUTSIDE, 8081),
            None,
            "{when}: egress"
        );
        assert_eq!(
            peer_seen(&lab.outside, "192.0.2.10", 2222).as_deref(),
            Some(OUTSIDE),
            "{when}: the port-forward"
        );
    };
    enforced("alone");
    foreign_nft(
        &env,
        "table inet other {\n\tchain filter_forward {\n\t\ttype filter hook forward priority -300; policy accept;\n\
         \t\taccept\n\t}\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat;\n\t}\n}\n\
         table bridge other {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n\
         \t\taccept\n\t}\n}\n",
    );
    enforced("beside accepting foreign tables");
    ok(&env, env.nft(&["flush", "table", "inet", "other"]));
    ok(&env, env.nft(&["flush", "table", "bridge", "other"]));
    enforced("after they were flushed");
    ok(&env, env.nft(&["delete", "table", "inet", "other"]));
    ok(&env, env.nft(&["delete", "table", "bridge", "other"]));
    enforced("after they were deleted");
    // Ours were never touched by any of it.
    let ours = ok(&env, env.nft(&["list", "table", "bridge", "palisade"]));
    assert!(text(&ours).contains(&port_name("evil")), "{}", text(&ours));
}

/// VM `work` of the VM tests, on the lab with a static address and a NAT address of its own, its
/// rules allowing the outside's port 8080.
fn bridged_work(cmdline: &str) -> String {
    let tail = format!(
        "\n[[vm.rule]]\naction = \"accept\"\ndestination = \"{OUTSIDE}\"\nproto = \"tcp\"\n\
         ports = 8080\n\n[[network]]\nname = \"lab\"\nsubnet = \"10.77.0.0/24\"\n\
         address = \"10.77.0.1\"\n"
    );
    palisade_tests::vm_policy_with(cmdline, "\"pal-alice\"", "", &tail).replacen(
        "name = \"work\"\n",
        "name = \"work\"\nnetwork = \"bridge\"\nbridge = \"lab\"\naddress = \"10.77.0.20\"\n\
         nat = { address = \"192.0.2.20\" }\n",
        1,
    )
}

#[test]
fn a_real_guest_on_its_port_has_its_address_and_its_rules() {
    let env = start();
    create_work(&env, "");
    apply(
        &env,
        &bridged_work(
            "pal.ip=10.77.0.20/24 pal.gw=10.77.0.1 \
             pal.connect=192.0.2.99:8080,192.0.2.99:8081",
        ),
        &[],
    );
    let lab = &Lab::wire(&env, &[]).unwrap_or_else(|e| panic!("{e:#}"));
    let web = Server::start(&lab.outside, "whoami", OUTSIDE, 8080);
    let other = Server::start(&lab.outside, "whoami", OUTSIDE, 8081);
    let lines = boot(&env, ALICE, &[]);
    assert!(
        has(&lines, "PALISADE-RESULT static 10.77.0.20/24 10.77.0.1"),
        "{lines:?}"
    );
    assert!(
        has(&lines, "PALISADE-RESULT connect 192.0.2.99:8080 ok"),
        "{lines:?}"
    );
    assert!(
        has(&lines, "PALISADE-RESULT connect 192.0.2.99:8081 fail"),
        "{lines:?}"
    );
    // It came out from its own NAT address, and the refused port never saw it.
    assert_eq!(
        web.lines
            .recv_timeout(Duration::from_secs(5))
            .ok()
            .as_deref(),
        Some("peer 192.0.2.20")
    );
    assert!(other.lines.try_recv().is_err());
    // Its port was on the bridge while it ran and is gone now that it has stopped.
    let port = port_name("work");
    let links = run_bounded(
        Command::new("ip").args(["-n", env.netns(), "link", "show", &port]),
        Duration::from_secs(10),
    );
    assert!(!links.status.success(), "{port} left behind");
}
