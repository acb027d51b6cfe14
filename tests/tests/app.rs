//! End-to-end tests of the desktop app: the real `palisade` window under Xvfb, talking to the real
//! helper over the private system bus, read back through AT-SPI the way a screen reader reads it.
//!
//! What the window shows is taken from its accessibility tree (`tests/tools/atspi_dump.py`), and
//! a label counts only if it is really on screen: GTK 4.8 reports the pages of a stack that are
//! not showing as "visible" too, so the tool asks the window what is drawn at the label's centre.
//!
//! Each test gets its own X server (Xvfb), session bus and AT-SPI bus; all of them run inside
//! the test's network namespace and are killed when the test ends, also on panic ([`Gui`]'s
//! `Drop`, then the namespace's). Screenshots go to `tests/artifacts/` (git-ignored).
//!
//! Needs the Debian packages xvfb, dbus, at-spi2-core, python3-gi, gir1.2-atspi-2.0 and
//! imagemagick (`tests/scripts/deps.sh`), and a debug build of `palisade`, `palisadectl` and
//! `palisade-helper` (`cargo build -p palisade-helper -p palisade-app`).

mod common;

use common::*;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use palisade_tests::{describe, run_bounded, wait_until, workspace_dir, TestEnv};
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The app's name on the accessibility bus (its program name, set in `main`).
const APP_NAME: &str = "palisade";
/// How long the window may take to show something: start-up of a debug build under Xvfb with
/// software rendering, on a busy 2-core machine.
const SHOW_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the window may take to follow a change made elsewhere.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);
/// One read of the accessibility tree.
const DUMP_TIMEOUT: Duration = Duration::from_secs(30);
/// The interpreter with Debian's `gi` (a pyenv or venv python on `PATH` may lack it).
const PYTHON: &str = "/usr/bin/python3";

/// A running X server, session bus (with the AT-SPI bus it starts on demand) and app. Dropping it
/// stops all of them.
struct Gui {
    app: Option<Child>,
    /// The session bus daemon; it leads a process group that the AT-SPI bus launcher, the AT-SPI
    /// bus and its registry join when the daemon activates them.
    session: Option<Child>,
    xvfb: Option<Child>,
    dir: PathBuf,
    display: String,
    session_address: String,
}

impl Gui {
    /// Starts Xvfb, a session bus and the app, pointed at `env`'s system bus.
    fn start(env: &TestEnv) -> Gui {
        let dir = env.dir().join("gui");
        let home = dir.join("home");
        let runtime = dir.join("run");
        for d in [&dir, &home, &runtime] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", d.display()));
        }
        let socket = dir.join("session_bus");
        let mut gui = Gui {
            app: None,
            session: None,
            xvfb: None,
            session_address: format!("unix:path={}", socket.display()),
            display: String::new(),
            dir,
        };

        // X server: -displayfd makes it pick a free display and print its number once it
        // accepts connections.
        let mut cmd = command(
            env,
            &[
                "Xvfb",
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x900x24",
                "-nolisten",
                "tcp",
            ],
        );
        cmd.stdout(Stdio::piped())
            .stderr(log_file(&gui.dir.join("xvfb.log")))
            .process_group(0);
        let mut xvfb = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting Xvfb (package xvfb): {e}"));
        let stdout = xvfb.stdout.take();
        gui.xvfb = Some(xvfb);
        let number = first_line(stdout, Duration::from_secs(20));
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            panic!(
                "Xvfb did not report a display within 20 s: {:?}\n{}",
                number,
                read(&gui.dir.join("xvfb.log"))
            );
        }
        gui.display = format!(":{number}");

        // Session bus, with the environment its activated services (the AT-SPI bus launcher)
        // inherit: a private HOME and XDG_RUNTIME_DIR, so the AT-SPI bus socket is private too.
        let mut cmd = command(
            env,
            &[
                "dbus-daemon",
                "--session",
                "--nofork",
                &format!("--address={}", gui.session_address),
            ],
        );
        gui.gui_env(&mut cmd);
        cmd.stdout(Stdio::null())
            .stderr(log_file(&gui.dir.join("session-bus.log")))
            .process_group(0);
        gui.session = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("starting the session bus (package dbus): {e}")),
        );
        if !wait_until(Duration::from_secs(10), || {
            UnixStream::connect(&socket).is_ok()
        }) {
            panic!(
                "the session bus did not listen within 10 s\n{}",
                read(&gui.dir.join("session-bus.log"))
            );
        }

        // The app, in the session bus's process group so that one signal stops everything.
        let app = env.bin_dir().join("palisade");
        assert!(
            app.exists(),
            "{} is missing: cargo build -p palisade-app --bin palisade",
            app.display()
        );
        let mut cmd = command(env, &[app.as_os_str()]);
        gui.gui_env(&mut cmd);
        cmd.env("GDK_BACKEND", "x11")
            // Xvfb has no GPU.
            .env("GSK_RENDERER", "cairo")
            // Export the accessibility tree over AT-SPI (the default; stated so that nothing in
            // the caller's environment can turn it off).
            .env("GTK_A11Y", "atspi")
            .env("GSETTINGS_BACKEND", "memory");
        let log = log_file(&gui.dir.join("app.log"));
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating the app log: {e}"));
        cmd.stdout(log).stderr(log2);
        if let Some(pgid) = gui.session.as_ref().map(Child::id) {
            cmd.process_group(i32::try_from(pgid).unwrap_or(0));
        }
        gui.app = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", app.display())),
        );
        gui
    }

    /// The variables every GUI process of this test gets.
    fn gui_env(&self, cmd: &mut Command) {
        cmd.env("DISPLAY", &self.display)
            .env("HOME", self.dir.join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.session_address);
    }

    /// Everything the app printed so far.
    fn app_log(&self) -> String {
        read(&self.dir.join("app.log"))
    }

    /// Panics, with the app's output, unless the app is still running.
    #[track_caller]
    fn assert_running(&mut self) {
        let status = self
            .app
            .as_mut()
            .and_then(|app| app.try_wait().ok().flatten());
        if let Some(status) = status {
            panic!("the app exited ({status})\n--- app log\n{}", self.app_log());
        }
        let log = self.app_log();
        assert!(!log.contains("panicked"), "the app panicked:\n{log}");
    }

    /// What the window shows now, read once over AT-SPI.
    fn dump(&self, env: &TestEnv) -> Result<Value, String> {
        let tool = workspace_dir().join("tests/tools/atspi_dump.py");
        let mut cmd = command(env, &[Path::new(PYTHON).as_os_str(), tool.as_os_str()]);
        cmd.arg(APP_NAME);
        self.gui_env(&mut cmd);
        let out = run_bounded(&mut cmd, DUMP_TIMEOUT);
        if !out.status.success() {
            return Err(describe(&out));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", describe(&out)))
    }

    /// Reads the window until `check` passes (returning that tree) or `timeout` runs out
    /// (panicking with the last tree and the app's output). Also panics if the app dies.
    #[track_caller]
    fn wait_for(
        &mut self,
        env: &TestEnv,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            self.assert_running();
            match self.dump(env) {
                Ok(tree) if check(&tree) => return tree,
                Ok(tree) => last = outline(&tree),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                panic!(
                    "the window did not show {what} within {timeout:?}\n--- last read of the \
                     window\n{last}\n--- app log\n{}\n--- helper log\n{}",
                    self.app_log(),
                    env.helper_log()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Saves the whole screen as `tests/artifacts/NAME`.
    fn screenshot(&self, env: &TestEnv, name: &str) -> PathBuf {
        let dir = workspace_dir().join("tests/artifacts");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(name);
        let mut cmd = command(
            env,
            &[
                "import".as_ref(),
                "-display".as_ref(),
                self.display.as_ref(),
                "-window".as_ref(),
                "root".as_ref(),
                path.as_os_str(),
            ],
        );
        let out = run_bounded(&mut cmd, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "screenshot with import (package imagemagick) failed: {}",
            describe(&out)
        );
        path
    }
}

impl Drop for Gui {
    fn drop(&mut self) {
        if let Some(mut app) = self.app.take() {
            stop(&mut app);
        }
        if let Some(mut session) = self.session.take() {
            // The whole group: the bus and what it activated (which are not its children).
            if let Ok(pgid) = i32::try_from(session.id()) {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
                if wait_exit(&mut session, Duration::from_secs(5)).is_none() {
                    let _ = session.kill();
                    let _ = wait_exit(&mut session, Duration::from_secs(5));
                }
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
        }
        if let Some(mut xvfb) = self.xvfb.take() {
            stop(&mut xvfb);
        }
    }
}

/// A command run as root in `env`'s network namespace with its clean environment.
fn command<S: AsRef<std::ffi::OsStr>>(env: &TestEnv, argv: &[S]) -> Command {
    env.command_as(None, argv)
        .unwrap_or_else(|e| panic!("preparing {:?}: {e:#}", argv.first().map(AsRef::as_ref)))
}

fn log_file(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The first line `out` prints within `timeout`, trimmed; empty if none.
fn first_line(out: Option<std::process::ChildStdout>, timeout: Duration) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        if let Some(out) = out {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let _ = tx.send(line);
    });
    rx.recv_timeout(timeout)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Waits at most `timeout` for `child` to exit.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Err(_) => return None,
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// SIGTERM, then SIGKILL after 5 s; always reaped.
fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if wait_exit(child, Duration::from_secs(5)).is_none() {
        let _ = child.kill();
        let _ = wait_exit(child, Duration::from_secs(5));
    }
}

// --- Reading the accessibility tree ---------------------------------------------------------

fn children(node: &Value) -> &[Value] {
    node["children"].as_array().map_or(&[], Vec::as_slice)
}

/// Every node of the tree, depth first.
fn nodes(tree: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for window in tree["windows"].as_array().map_or(&[][..], Vec::as_slice) {
        out.push(window);
        out.extend(descendants(window));
    }
    out
}

/// Every node below `node` (not itself), depth first in document order.
fn descendants(node: &Value) -> Vec<&Value> {
    fn walk<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
        for child in children(node) {
            out.push(child);
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    walk(node, &mut out);
    out
}

fn name(node: &Value) -> &str {
    node["name"].as_str().unwrap_or_default()
}

fn role(node: &Value) -> &str {
    node["role"].as_str().unwrap_or_default()
}

fn is_shown(node: &Value) -> bool {
    node["shown"].as_bool() == Some(true)
}

/// Whether a label reading exactly `text` is on screen.
fn shows_label(tree: &Value, text: &str) -> bool {
    nodes(tree)
        .iter()
        .any(|n| role(n) == "label" && name(n) == text && is_shown(n))
}

/// Whether a label containing `text` is on screen.
fn shows_label_containing(tree: &Value, text: &str) -> bool {
    nodes(tree)
        .iter()
        .any(|n| role(n) == "label" && name(n).contains(text) && is_shown(n))
}

/// The texts of the labels in the on-screen row titled `title`, other than the title: what the
/// row says about it (e.g. "Live generation" → ["1"]).
fn row_values(tree: &Value, title: &str) -> Vec<String> {
    nodes(tree)
        .iter()
        .filter(|n| role(n) == "list item" && name(n) == title && is_shown(n))
        .flat_map(|row| descendants(row))
        .filter(|n| role(n) == "label" && name(n) != title)
        .map(|n| name(n).to_owned())
        .collect()
}

/// The names of the VMs on screen in the "Virtual machines" list, sorted. Each VM is an
/// expander row there, whose first row is its header, named after the VM.
fn vm_rows(tree: &Value) -> Vec<String> {
    let mut out: Vec<String> = nodes(tree)
        .iter()
        .filter(|n| role(n) == "list" && name(n) == "Virtual machines")
        .flat_map(|list| children(list))
        .filter(|expander| role(expander) == "list item")
        .filter_map(|expander| {
            descendants(expander)
                .into_iter()
                .find(|n| role(n) == "list item")
        })
        .filter(|header| is_shown(header))
        .map(|header| name(header).to_owned())
        .collect();
    out.sort();
    out
}

/// The tree as indented lines, for failure messages.
fn outline(tree: &Value) -> String {
    fn walk(node: &Value, depth: usize, out: &mut String) {
        let shown = match node["shown"].as_bool() {
            Some(true) => " [shown]",
            Some(false) => " [not shown]",
            None => "",
        };
        out.push_str(&format!(
            "{:indent$}{} {:?}{shown}\n",
            "",
            role(node),
            name(node),
            indent = depth * 2
        ));
        for child in children(node) {
            walk(child, depth + 1, out);
        }
    }
    let mut out = String::new();
    for window in tree["windows"].as_array().map_or(&[][..], Vec::as_slice) {
        walk(window, 0, &mut out);
    }
    out
}

// --- Tests ------------------------------------------------------------------------------------

fn example_policy() -> String {
    let path = workspace_dir().join("data/examples/policy.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Applies `doc` as root (no confirmation needed) and returns the new generation.
fn apply_as_root(env: &TestEnv, file: &str, doc: &str) -> u64 {
    let path = env
        .write_file(file, doc)
        .unwrap_or_else(|e| panic!("{e:#}"));
    ok(
        env,
        env.palisadectl(None, &["policy", "apply", &path.to_string_lossy()]),
    );
    generation(env)
}

#[test]
fn window_shows_the_live_policy_and_follows_changes() {
    let env =
        TestEnv::start().unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    assert_eq!(apply_as_root(&env, "policy.toml", &example_policy()), 1);
    let mut gui = Gui::start(&env);

    let tree = gui.wait_for(
        &env,
        "generation 1 with the example's VMs",
        SHOW_TIMEOUT,
        |t| row_values(t, "Live generation") == ["1"] && vm_rows(t) == ["banking", "work"],
    );
    assert!(shows_label(&tree, "work"), "{}", outline(&tree));
    assert!(shows_label(&tree, "banking"), "{}", outline(&tree));
    assert_eq!(
        row_values(&tree, "Virtual machines"),
        ["2"],
        "{}",
        outline(&tree)
    );
    assert!(
        shows_label(&tree, "The live policy, generation 1"),
        "{}",
        outline(&tree)
    );

    // A change made elsewhere: the window must follow it by itself (GenerationChanged), with
    // nobody touching it.
    let changed = format!(
        "{}\n[[vm]]\nname = \"extra\"\ndisk = \"extra.qcow2\"\nmemory = 512\ncpus = 1\n\
         network = \"none\"\noperators = {{ users = [\"alice\"] }}\ndefault = \"drop\"\n",
        example_policy()
    );
    let started = Instant::now();
    assert_eq!(apply_as_root(&env, "changed.toml", &changed), 2);
    // The app says so in a toast only when the signal arrives (a plain re-read does not).
    let toast = std::cell::Cell::new(false);
    let tree = gui.wait_for(&env, "generation 2 with VM extra", UPDATE_TIMEOUT, |t| {
        toast.set(toast.get() || shows_label(t, "Generation 2 is now live"));
        row_values(t, "Live generation") == ["2"] && vm_rows(t) == ["banking", "extra", "work"]
    });
    eprintln!("window updated {:?} after the apply", started.elapsed());
    if !toast.get() {
        // The toast lasts 8 s; the update may have been read in the same pass that missed it.
        gui.wait_for(
            &env,
            "the toast of GenerationChanged",
            Duration::from_secs(5),
            |t| shows_label(t, "Generation 2 is now live"),
        );
    }
    assert_eq!(
        row_values(&tree, "Virtual machines"),
        ["3"],
        "{}",
        outline(&tree)
    );
    assert!(
        shows_label(&tree, "The live policy, generation 2"),
        "{}",
        outline(&tree)
    );

    let shot = gui.screenshot(&env, "app.png");
    eprintln!("screenshot: {}", shot.display());
    gui.assert_running();
}

#[test]
fn window_without_helper_says_so_and_recovers_when_it_starts() {
    let mut env = TestEnv::start_without_helper()
        .unwrap_or_else(|e| panic!("cannot start the test environment: {e:#}"));
    let mut gui = Gui::start(&env);

    let tree = gui.wait_for(
        &env,
        "that the helper is not reachable",
        SHOW_TIMEOUT,
        |t| shows_label(t, "The helper is not reachable"),
    );
    assert!(
        shows_label_containing(&tree, "helper service is not running"),
        "{}",
        outline(&tree)
    );
    // Nothing of the other pages is on screen.
    assert!(
        row_values(&tree, "Live generation").is_empty(),
        "{}",
        outline(&tree)
    );
    for other in ["Connecting to the helper…", "Not allowed", "Helper"] {
        assert!(!shows_label(&tree, other), "{other}:\n{}", outline(&tree));
    }
    gui.screenshot(&env, "app-unreachable.png");

    // It stays up, and keeps saying so.
    std::thread::sleep(Duration::from_secs(3));
    gui.assert_running();
    gui.wait_for(
        &env,
        "that the helper is still not reachable",
        UPDATE_TIMEOUT,
        |t| shows_label(t, "The helper is not reachable"),
    );

    // When the helper appears on the bus, the window notices by itself.
    env.start_helper()
        .unwrap_or_else(|e| panic!("starting the helper: {e:#}"));
    gui.wait_for(&env, "the helper's status", UPDATE_TIMEOUT, |t| {
        row_values(t, "Live generation") == ["None applied yet"]
            && !shows_label(t, "The helper is not reachable")
    });
    gui.assert_running();
}
