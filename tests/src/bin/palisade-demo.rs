//! `make demo`: a private, throwaway Palisade — bus, polkitd and helper in their own network
//! namespace, loaded with the example policy plus a VM `demo` that boots the tiny test guest —
//! and the app, started as the demo admin `pal-admin` (a member of `palisade-admin`, made by the
//! harness like every test user). The GUI never runs as root, not even here.
//!
//! The guest tries two ports of the host every 5 s: 8443, which its rules allow, and 8444, which
//! they do not. In the app a newcomer opens its console (the guest prints each try on its
//! screen), watches the drops on the Activity page, and can change its rules. Without a
//! display (or one the demo user may not draw on) the demo prints what it did, what the guest
//! reported and how to reach everything. `--once` stops after that instead of waiting for
//! Ctrl-C; `--tcg` runs the guest without KVM (a guest that reports nothing within 40 s under
//! KVM is started again without it: nested KVM can start guests that never run). Ctrl-C tears
//! everything down; the host's own firewall, bus and polkit are never touched.

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{SigSet, Signal};
use palisade_tests::{install_guest_kernel, run_bounded, workspace_dir, TestEnv, ADMIN};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The demo VM's entry, after the example policy.
const DEMO_VM: &str = r#"
[[vm]]
name = "demo"
memory = 256
cpus = 1
kernel = "vmlinuz"
initrd = "initrd.img"
# The guest's results go to its serial log and, for whoever opens its console, its screen.
cmdline = "console=ttyS0 quiet pal.screen=1 pal.stay=1 pal.repeat=5 pal.connect=10.0.2.2:8443,10.0.2.2:8444"
operators = { users = ["pal-admin", "pal-alice"] }
console = { users = ["pal-admin", "pal-alice"] }
default = "drop"

[[vm.rule]]
action = "accept"
destination = "127.0.0.1"
proto = "tcp"
ports = 8443
comment = "the demo's listener; 8444 is not allowed: watch it fail"
"#;

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

    let env = TestEnv::start().context("starting the demo environment")?;
    let example = std::fs::read_to_string(workspace_dir().join("data/examples/policy.toml"))
        .context("reading the example policy")?;
    palisadectl(
        &env,
        &["policy", "apply", &write(&env, "example.toml", &example)?],
    )?;
    palisadectl(
        &env,
        &[
            "vm",
            "create",
            "demo",
            "--disk-size",
            "16M",
            "--memory",
            "256M",
            "--cpus",
            "1",
        ],
    )?;
    install_guest_kernel(&env, "demo").context("installing the tiny guest")?;
    let _listeners = listen(&env)?;
    let boot = |tcg: bool| -> Result<String> {
        let accel = if tcg {
            "\n[settings]\naccel = \"tcg\"\n"
        } else {
            ""
        };
        let policy = format!("{example}\n{DEMO_VM}{accel}");
        palisadectl(
            &env,
            &["policy", "apply", &write(&env, "demo.toml", &policy)?],
        )?;
        palisadectl(&env, &["vm", "start", "demo"])?;
        Ok(guest_results(
            &env,
            Duration::from_secs(if tcg { 120 } else { 40 }),
        ))
    };
    let mut results = boot(tcg)?;
    if results.is_empty() && !tcg {
        println!("The guest said nothing under KVM within 40 s; starting it again without KVM.");
        palisadectl(&env, &["vm", "stop", "demo", "--force"])?;
        let _ = std::fs::remove_file(console_log(&env));
        results = boot(true)?;
    }
    println!("Palisade demo: the example policy and VM demo (the tiny test guest) are live.");
    println!("{}", palisadectl(&env, &["status"])?);
    println!("The guest says:\n{results}");
    let log = palisadectl(&env, &["log", "show", "--vm", "demo", "--max", "3"])?;
    println!("The drop log (palisadectl log show --vm demo):\n{log}");

    let mut app = None;
    if let Some(display) = app_display().filter(|_| !once) {
        match start_app(&env, &display) {
            Ok(child) => {
                app = Some(child);
                println!(
                    "The Palisade app is open as {ADMIN}: My machines → demo → Open console shows \
                     the guest; the Activity page shows its blocked tries; the Firewall page its \
                     rules. Ctrl-C ends the demo."
                );
            }
            Err(e) => println!("The app could not be opened on {display}: {e:#}"),
        }
    }
    if app.is_none() {
        println!(
            "\nTo look around yourself (as root):\n  \
             DBUS_SYSTEM_BUS_ADDRESS={bus} {bin}/palisadectl status\n  \
             DBUS_SYSTEM_BUS_ADDRESS={bus} {bin}/palisadectl log follow --vm demo\n\
             The guest's console log: {console}",
            bus = env.bus_address(),
            bin = env.bin_dir().display(),
            console = console_log(&env).display()
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

/// `palisadectl ARGS` as the demo admin; its output, or an error with what it said.
fn palisadectl(env: &TestEnv, args: &[&str]) -> Result<String> {
    let out = env.palisadectl(Some(ADMIN), args);
    text_of(&out).with_context(|| format!("palisadectl {}", args.join(" ")))
}

fn text_of(out: &Output) -> Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(anyhow!("{}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Writes a policy file the demo admin may read; its path.
fn write(env: &TestEnv, name: &str, text: &str) -> Result<String> {
    Ok(env.write_file(name, text)?.to_string_lossy().into_owned())
}

/// The listeners the guest tries, on the host's loopback (the guest's 10.0.2.2).
fn listen(env: &TestEnv) -> Result<Child> {
    let tool = workspace_dir().join("tests/tools/netcheck.py");
    let mut child = env.spawn_as(
        None,
        &["python3", &tool.to_string_lossy(), "listen", "8443", "8444"],
    )?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let _ = child.kill();
        return Err(anyhow!("the demo's listeners did not start"));
    }
    Ok(child)
}

fn console_log(env: &TestEnv) -> std::path::PathBuf {
    env.state_dir().join("run/demo/console.log")
}

/// The guest's first round of results, once both tries are reported (or what it said by then).
fn guest_results(env: &TestEnv, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(console_log(env)).unwrap_or_default();
        let results: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                l.find("PALISADE-RESULT")
                    .map(|i| l[i..].trim_end_matches('\r'))
            })
            .collect();
        let tries = results.iter().filter(|l| l.contains(" connect ")).count();
        if tries >= 2 || started.elapsed() > limit {
            return results
                .iter()
                .map(|l| format!("  {l}\n"))
                .collect::<String>();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The X display to open the app on, when there is one.
fn app_display() -> Option<String> {
    std::env::var("DISPLAY").ok().filter(|d| !d.is_empty())
}

/// Lets the demo admin draw on `display` and starts the app as that user, with a session bus of
/// its own and the demo's system bus.
fn start_app(env: &TestEnv, display: &str) -> Result<Child> {
    // The desktop's X server admits its own user; the demo admin is let in by name only.
    let granted = run_bounded(
        Command::new("xhost")
            .arg(format!("+SI:localuser:{ADMIN}"))
            .env("DISPLAY", display),
        Duration::from_secs(10),
    );
    if !granted.status.success() {
        return Err(anyhow!(
            "the display does not let {ADMIN} in (run `xhost +SI:localuser:{ADMIN}` in your \
             desktop session, then the demo again): {}",
            String::from_utf8_lossy(&granted.stderr).trim()
        ));
    }
    let home = env.dir().join("demo-home");
    let runtime = env.dir().join("demo-run");
    let account = palisade_tests::account(ADMIN)?;
    for dir in [&home, &runtime] {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        nix::unistd::chown(
            dir.as_path(),
            Some(nix::unistd::Uid::from_raw(account.uid)),
            Some(nix::unistd::Gid::from_raw(account.gid)),
        )?;
    }
    let app = env.user_path(&env.bin_dir().join("palisade"));
    let mut cmd = env.command_as(
        Some(ADMIN),
        &[
            Path::new("dbus-run-session"),
            Path::new("--"),
            app.as_path(),
        ],
    )?;
    cmd.env("DISPLAY", display)
        .env("GDK_BACKEND", "x11")
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(cmd.spawn()?)
}
