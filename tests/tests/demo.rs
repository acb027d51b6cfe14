//! `make demo` without a display: it boots the tiny guest as VM `demo` under the example policy
//! as the demo admin, and reports what the guest saw (the allowed port reached, the other one
//! blocked), the drop log's entry for the blocked try, and how to reach everything. With a
//! display (Xvfb): the app runs as the demo admin and opens the demo VM's console.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use palisade_tests::{
    account, bin_dir, describe, run_bounded, wait_until, workspace_dir, Xvfb, ADMIN,
};
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn the_demo_boots_its_guest_and_shows_a_blocked_connection() {
    let demo = bin_dir().join("palisade-demo");
    assert!(
        demo.exists(),
        "{} is missing: cargo build --workspace",
        demo.display()
    );
    let out = run_bounded(
        Command::new(&demo)
            .args(["--once", "--tcg"])
            .env_remove("DISPLAY"),
        Duration::from_secs(300),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for wanted in [
        "PALISADE-RESULT connect 10.0.2.2:8443 ok",
        "PALISADE-RESULT connect 10.0.2.2:8444 fail",
        "from vm demo",
        "palisadectl log follow --vm demo",
        "Demo stopped",
    ] {
        assert!(text.contains(wanted), "{wanted:?} missing from:\n{text}");
    }
}

/// `make demo` with a display: the app runs as the demo admin, not root, and **Open console**,
/// clicked over AT-SPI as that user, starts a viewer that connects to the demo VM's display.
/// The viewer is a script that records what it was given and hands over to the real
/// remote-viewer (as in `app.rs`); the screen goes to `tests/artifacts/demo-console.png`.
#[test]
fn the_demo_with_a_display_runs_the_app_as_its_admin_and_opens_the_console() {
    let demo = bin_dir().join("palisade-demo");
    assert!(
        demo.exists(),
        "{} is missing: cargo build --workspace",
        demo.display()
    );
    let xvfb = Xvfb::start().unwrap_or_else(|e| panic!("{e:#}"));
    // The viewer stand-in and the AT-SPI tools, where the demo admin can read and run them.
    let dir = std::env::temp_dir().join(format!("palisade-demo-test-{}", std::process::id()));
    let record = dir.join("record");
    std::fs::create_dir_all(&record)
        .unwrap_or_else(|e| panic!("creating {}: {e}", record.display()));
    for (path, mode) in [(&dir, 0o755), (&record, 0o1777)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }
    let _cleanup = RemoveOnDrop(dir.clone());
    for tool in ["atspi_action.py", "atspi_common.py"] {
        std::fs::copy(
            workspace_dir().join("tests/tools").join(tool),
            dir.join(tool),
        )
        .unwrap_or_else(|e| panic!("copying {tool}: {e}"));
    }
    let viewer = dir.join("viewer.sh");
    std::fs::write(
        &viewer,
        format!(
            "#!/bin/sh\n# Records what the app gave the viewer, then starts the real one.\n\
             rec='{}'\ncat \"$1\" > \"$rec/vv.tmp\" && mv \"$rec/vv.tmp\" \"$rec/vv\"\n\
             exec remote-viewer \"$@\"\n",
            record.display()
        ),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", viewer.display()));
    std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", viewer.display()));

    let stderr = dir.join("demo.stderr");
    let mut cmd = Command::new(&demo);
    cmd.arg("--tcg")
        .env("DISPLAY", xvfb.display())
        .env("PALISADE_VIEWER", &viewer)
        // Xvfb has no GPU; the test's own settings, not the machine's.
        .env("GSK_RENDERER", "cairo")
        .env("GSETTINGS_BACKEND", "memory");
    let mut running = Running::start(&mut cmd, &stderr);
    let limit = Duration::from_secs(300);
    let pid: u32 = running
        .value("App process: ", limit)
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {}", running.said));
    let session = running.value("App session bus: ", limit);
    let system_bus = running
        .value("  DBUS_SYSTEM_BUS_ADDRESS=", limit)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        running
            .said
            .contains("PALISADE-RESULT connect 10.0.2.2:8444 fail"),
        "{}",
        running.said
    );

    // The app runs as the demo admin, not root. (The process starts as `ip netns exec` and
    // `setpriv`, each of which executes the next.)
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || comm().trim() == "palisade"),
        "process {pid} did not become the app: {:?}",
        comm()
    );
    let admin = account(ADMIN).unwrap_or_else(|e| panic!("{e:#}"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading the app's status: {e}"));
    let uids: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|u| u.parse().ok())
        .collect();
    assert_eq!(
        uids, [admin.uid; 4],
        "the app's real, effective, saved and file uids\n{status}"
    );

    // Open console, clicked over AT-SPI as the demo admin, in the app's network namespace and
    // session.
    let click = || {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["--", "setpriv"])
            .arg(format!("--reuid={}", admin.uid))
            .arg(format!("--regid={}", admin.gid))
            .args(["--init-groups", "--", "env", "-i"])
            .arg(format!("DISPLAY={}", xvfb.display()))
            .arg(format!("DBUS_SESSION_BUS_ADDRESS={session}"))
            .arg(format!("HOME={}", admin.home))
            .arg("/usr/bin/python3")
            .arg(dir.join("atspi_action.py"))
            .args(["palisade", "push button", "Open console of demo"]);
        run_bounded(&mut cmd, Duration::from_secs(60))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = click();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "could not click Open console of demo: {}\n--- demo\n{}",
            describe(&out),
            running.said
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        wait_until(Duration::from_secs(30), || record.join("vv").exists()),
        "no viewer was started\n--- demo\n{}",
        running.said
    );
    let vv = std::fs::read_to_string(record.join("vv")).unwrap_or_default();
    assert!(vv.lines().any(|l| l == "title=demo"), "{vv}");

    // The real remote-viewer connected to the demo VM's display.
    let channels = || -> u64 {
        let out = run_bounded(
            Command::new(bin_dir().join("palisadectl"))
                .args(["--json", "vm", "list"])
                .env("DBUS_SYSTEM_BUS_ADDRESS", &system_bus),
            Duration::from_secs(30),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .and_then(|vms| vms.iter().find(|vm| vm["name"] == "demo"))
            .and_then(|vm| vm["viewer_channels"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(60), || channels() >= 2),
        "remote-viewer did not connect to VM demo (channels: {})\n--- demo\n{}",
        channels(),
        running.said
    );
    std::thread::sleep(Duration::from_secs(3));
    let artifacts = workspace_dir().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap_or_else(|e| panic!("{e}"));
    let shot = artifacts.join("demo-console.png");
    let out = run_bounded(
        Command::new("import")
            .args(["-display", xvfb.display(), "-window", "root"])
            .arg(&shot),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "screenshot: {}", describe(&out));
    eprintln!("screenshot: {}", shot.display());

    // Ctrl-C ends the demo, and it says so.
    running.stop();
    assert!(running.said.contains("Demo stopped"), "{}", running.said);
}

/// The demo's process and what it printed; interrupted (as Ctrl-C does) and reaped when
/// dropped.
struct Running {
    child: Option<std::process::Child>,
    lines: mpsc::Receiver<String>,
    /// Its stdout so far.
    said: String,
    stderr: PathBuf,
}

impl Running {
    fn start(cmd: &mut Command, stderr: &Path) -> Running {
        let err = std::fs::File::create(stderr)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr.display()));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the demo: {e}"));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take();
        std::thread::spawn(move || {
            if let Some(out) = out {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        Running {
            child: Some(child),
            lines,
            said: String::new(),
            stderr: stderr.to_owned(),
        }
    }

    /// The rest of the first line the demo printed that starts with `prefix`, trimmed; panics
    /// if none comes within `limit`.
    fn value(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = self.said.lines().find_map(|l| l.strip_prefix(prefix)) {
                return v.trim().to_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.said.push_str(&line);
                    self.said.push('\n');
                }
                Err(_) => panic!(
                    "the demo did not say {prefix:?}:\n{}\n--- stderr\n{}",
                    self.said,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    /// SIGINT, as Ctrl-C; waits (at most 120 s) for the demo to exit and keeps what it said.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        if !wait_until(Duration::from_secs(120), || {
            matches!(child.try_wait(), Ok(Some(_)))
        }) {
            let _ = child.kill();
        }
        let _ = child.wait();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.said.push_str(&line);
            self.said.push('\n');
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes a folder when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `make screenshots` is not part of `make test` (it photographs every page four times); its
/// program is built with the tests and answers `--help` without starting anything.
#[test]
fn the_screenshots_program_is_built_and_says_what_it_writes() {
    let program = bin_dir().join("palisade-screenshots");
    assert!(
        program.exists(),
        "{} is missing: cargo build --workspace",
        program.display()
    );
    let out = run_bounded(
        Command::new(&program).arg("--help"),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text.contains("NAME-{light,dark}-{en,ru}.png") && text.contains("docs/screenshots"),
        "{text}"
    );
}
