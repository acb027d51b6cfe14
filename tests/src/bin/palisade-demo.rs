//! `make demo`: a private, throwaway Palisade — bus, polkitd and helper in their own network
//! namespace, loaded with the example policy — and the app connected to it. Without a display it
//! prints `palisadectl status` and the live policy instead. Ctrl-C tears everything down; the
//! host's own firewall, bus and polkit are never touched.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};
use palisade_tests::{workspace_dir, TestEnv};

fn main() -> Result<()> {
    let once = std::env::args().any(|a| a == "--once");
    // Block the signals before any thread starts, then wait for them at the end.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;

    let env = TestEnv::start().context("starting the demo environment")?;
    let example = workspace_dir().join("data/examples/policy.toml");
    let out = env.palisadectl(None, &["policy", "apply", &example.to_string_lossy()]);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let status = env.palisadectl(None, &["status"]);
    print!("{}", String::from_utf8_lossy(&status.stdout));

    let display = std::env::var_os("DISPLAY").or_else(|| std::env::var_os("WAYLAND_DISPLAY"));
    let mut app = None;
    if display.is_some() && !once {
        let mut cmd = std::process::Command::new(env.bin_dir().join("palisade"));
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", env.bus_address());
        app = Some(cmd.spawn().context("starting the app")?);
        println!("The Palisade app is open. Ctrl-C ends the demo.");
    } else {
        let show = env.palisadectl(None, &["policy", "show"]);
        print!("{}", String::from_utf8_lossy(&show.stdout));
        println!(
            "\nNo display: this is what the app would show.\nThe demo bus is at {} \
             (DBUS_SYSTEM_BUS_ADDRESS={} palisadectl status).",
            env.bus_address(),
            env.bus_address()
        );
        if !once {
            println!("Ctrl-C ends the demo.");
        }
    }
    if !once {
        let _ = signals.wait();
    }
    if let Some(mut child) = app {
        let _ = child.kill();
        let _ = child.wait();
    }
    println!("Demo stopped; everything it started is gone.");
    Ok(())
}
