//! `make demo`: a private, throwaway Palisade — bus, polkitd and helper in their own network
//! namespace, loaded with the example policy plus a VM `demo` that boots the tiny test guest —
//! and the app, started as the demo admin `pal-admin` (a member of `palisade-admin`, made by the
//! harness like every test user). The GUI never runs as root, not even here. The installation
//! itself is `palisade_tests::demo`, shared with `make screenshots`.
//!
//! The guest tries two ports of the host every 5 s: 8443, which its rules allow, and 8444, which
//! they do not. In the app a newcomer opens its console (the guest prints each try on its
//! screen), watches the drops on the Activity page, and can change its rules. Without a
//! display (or one the demo user may not draw on) the demo prints what it did, what the guest
//! reported and how to reach everything. `--once` stops after that instead of waiting for
//! Ctrl-C; `--tcg` runs the guest without KVM (a guest that reports nothing within 40 s under
//! KVM is started again without it: nested KVM can start guests that never run). Ctrl-C (or
//! SIGTERM) tears everything down; the host's own firewall, bus and polkit are never touched.
//!
//! With the app open it prints the app's process id, its session bus and the demo's system bus,
//! so a test (`tests/tests/demo.rs`) or a curious person can reach them; the app's output goes
//! to `demo-app.log` in the demo's folder.

use anyhow::Result;
use nix::sys::signal::{SigSet, Signal};
use palisade_tests::demo::{palisadectl, Demo, DemoApp};
use palisade_tests::ADMIN;

fn main() -> Result<()> {
    let once = std::env::args().any(|a| a == "--once");
    // KVM when the machine has it; `--tcg` for machines whose KVM starts guests that never run
    // (nested virtualisation without the CPU features a guest kernel needs, as on CI machines).
    let tcg = std::env::args().any(|a| a == "--tcg");
    // Block the signals before any thread starts, then wait for them at the end.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;

    let demo = Demo::start(tcg, |line| println!("{line}"))?;
    let env = &demo.env;
    println!("Palisade demo: the example policy and VM demo (the tiny test guest) are live.");
    println!("{}", palisadectl(env, &["status"])?);
    println!("The guest says:\n{}", demo.results);
    let log = palisadectl(env, &["log", "show", "--vm", "demo", "--max", "3"])?;
    println!("The drop log (palisadectl log show --vm demo):\n{log}");

    let mut app: Option<DemoApp> = None;
    if let Some(display) = app_display().filter(|_| !once) {
        match demo.start_app(&display) {
            Ok(started) => {
                println!(
                    "The Palisade app is open as {ADMIN}: My machines → demo → Open console shows \
                     the guest; the Activity page shows its blocked tries; the Firewall page its \
                     rules. Ctrl-C ends the demo."
                );
                println!("App process: {}", started.pid());
                println!("App session bus: {}", started.session_address());
                println!("App output: {}", started.log().display());
                app = Some(started);
            }
            Err(e) => println!("The app could not be opened on {display}: {e:#}"),
        }
    }
    println!(
        "\nTo look around yourself (as root):\n  \
         DBUS_SYSTEM_BUS_ADDRESS={bus} {bin}/palisadectl status\n  \
         DBUS_SYSTEM_BUS_ADDRESS={bus} {bin}/palisadectl log follow --vm demo\n\
         The guest's console log: {console}",
        bus = env.bus_address(),
        bin = env.bin_dir().display(),
        console = demo.console_log().display()
    );
    if app.is_none() && !once {
        println!("Ctrl-C ends the demo.");
    }
    if !once {
        let _ = signals.wait();
    }
    drop(app);
    drop(demo);
    println!("Demo stopped; everything it started is gone.");
    Ok(())
}

/// The X display to open the app on, when there is one.
fn app_display() -> Option<String> {
    std::env::var("DISPLAY").ok().filter(|d| !d.is_empty())
}
