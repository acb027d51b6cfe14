//! The app under test: a private X server, session bus and AT-SPI bus with the real `palisade`
//! window, read and driven through AT-SPI (`tests/tools/atspi_*.py`) the way a screen reader
//! does. Shared by the app's test files (`app.rs`, `app_admin.rs`); see `app.rs` for the whole
//! approach.
#![allow(dead_code)] // each test file uses a different subset

use crate::common::*;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use palisade_tests::{account, describe, run_bounded, wait_until, workspace_dir, TestEnv, ADMIN};
use serde_json::Value;
use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The app's name on the accessibility bus (its program name, set in `main`).
pub const APP_NAME: &str = "palisade";
/// How long the window may take to show something: start-up of a debug build under Xvfb with
/// software rendering, on a busy 2-core machine.
pub const SHOW_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the window may take to follow a change made elsewhere.
pub const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);
/// One read of the accessibility tree.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a window's state must hold between the two reads that make [`Gui::wait_for`]
/// accept it.
pub const SETTLE: Duration = Duration::from_millis(300);
/// The interpreter with Debian's `gi` (a pyenv or venv python on `PATH` may lack it).
pub const PYTHON: &str = "/usr/bin/python3";

/// A running X server, session bus (with the AT-SPI bus it starts on demand) and app. Dropping it
/// stops all of them.
pub struct Gui {
    /// Whom the session bus, the app and the AT-SPI tools run as (`None`: root).
    pub user: Option<String>,
    pub app: Option<Child>,
    /// The session bus daemon; it leads a process group that the AT-SPI bus launcher, the AT-SPI
    /// bus and its registry join when the daemon activates them.
    pub session: Option<Child>,
    pub xvfb: Option<Child>,
    pub dir: PathBuf,
    pub display: String,
    pub session_address: String,
    /// The AT-SPI tools' server, started on first use (see [`ToolServer`]).
    tools: RefCell<Option<ToolServer>>,
}

/// `atspi_serve.py`, running as the GUI's user: runs `atspi_dump.py` and `atspi_action.py` in
/// one process, so that each of the hundreds of reads of a test does not start Python and
/// connect to the accessibility bus anew.
struct ToolServer {
    child: Child,
    requests: ChildStdin,
    /// Its reply lines, read by a thread (so that a wait for one can time out).
    replies: mpsc::Receiver<String>,
}

impl ToolServer {
    fn start(gui: &Gui, env: &TestEnv) -> Result<ToolServer, String> {
        // The tools it imports must lie beside it where the GUI's user can read them.
        for tool in ["atspi_dump.py", "atspi_action.py"] {
            gui.tool(env, tool);
        }
        let server = gui.tool(env, "atspi_serve.py");
        let mut cmd = gui.command(env, &[Path::new(PYTHON).as_os_str(), server.as_os_str()]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file(&gui.dir.join("atspi-serve.log")));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting atspi_serve.py: {e}"))?;
        let (Some(requests), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("atspi_serve.py has no pipes".into());
        };
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(ToolServer {
            child,
            requests,
            replies,
        })
    }

    /// Runs `tool` with `args` in the server; its output as if it had run on its own.
    fn run(&mut self, tool: &str, args: &[&str], timeout: Duration) -> Result<Output, String> {
        let request: Vec<&str> = std::iter::once(tool).chain(args.iter().copied()).collect();
        let mut line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
        line.push('\n');
        self.requests
            .write_all(line.as_bytes())
            .and_then(|()| self.requests.flush())
            .map_err(|e| format!("atspi_serve.py took no request: {e}"))?;
        let reply = self
            .replies
            .recv_timeout(timeout)
            .map_err(|e| format!("atspi_serve.py gave no answer within {timeout:?}: {e}"))?;
        let reply: Value = serde_json::from_str(&reply)
            .map_err(|e| format!("atspi_serve.py answered {reply:?}: {e}"))?;
        let text = |key: &str| reply[key].as_str().unwrap_or_default().as_bytes().to_vec();
        let status = reply["status"].as_i64().unwrap_or(1);
        Ok(Output {
            status: std::process::ExitStatus::from_raw(
                i32::try_from(status & 0xff).unwrap_or(1) << 8,
            ),
            stdout: text("stdout"),
            stderr: text("stderr"),
        })
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

impl Gui {
    /// Starts Xvfb, a session bus and the app as root, pointed at `env`'s system bus.
    pub fn start(env: &TestEnv) -> Gui {
        Gui::start_as(env, None, &[])
    }

    /// Starts Xvfb (as root), then a session bus and the app as `user` with `app_env` added to
    /// the app's environment. The user's HOME and XDG_RUNTIME_DIR are private folders of theirs.
    pub fn start_as(env: &TestEnv, user: Option<&str>, app_env: &[(&str, &OsStr)]) -> Gui {
        let owner = user.map(|u| account(u).unwrap_or_else(|e| panic!("{e:#}")));
        let dir = env.dir().join("gui");
        let home = dir.join("home");
        let runtime = dir.join("run");
        for d in [&dir, &home, &runtime] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", d.display()));
            if let Some(owner) = &owner {
                std::os::unix::fs::chown(d, Some(owner.uid), Some(owner.gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", d.display()));
            }
        }
        let socket = dir.join("session_bus");
        let mut gui = Gui {
            user: user.map(str::to_owned),
            app: None,
            session: None,
            xvfb: None,
            session_address: format!("unix:path={}", socket.display()),
            display: String::new(),
            dir,
            tools: RefCell::new(None),
        };

        // X server: -displayfd makes it pick a free display and print its number once it
        // accepts connections. With a test user's app, -ac lets that user connect too (only
        // through the local socket: -nolisten tcp, in the test's own network namespace).
        let mut argv = vec![
            "Xvfb",
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1024x900x24",
            "-nolisten",
            "tcp",
        ];
        if user.is_some() {
            argv.push("-ac");
        }
        let mut cmd = command(env, &argv);
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
        let mut cmd = gui.command(
            env,
            &[
                "dbus-daemon",
                "--session",
                "--nofork",
                &format!("--address={}", gui.session_address),
            ],
        );
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
        let app = env.user_path(&app);
        let mut cmd = gui.command(env, &[app.as_os_str()]);
        for (key, value) in app_env {
            cmd.env(key, value);
        }
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

    /// A command run in `env` as the GUI's user, with the variables every GUI process of this
    /// test gets.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, env: &TestEnv, argv: &[S]) -> Command {
        let mut cmd = env
            .command_as(self.user.as_deref(), argv)
            .unwrap_or_else(|e| panic!("preparing {:?}: {e:#}", argv.first().map(AsRef::as_ref)));
        cmd.env("DISPLAY", &self.display)
            .env("HOME", self.dir.join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.session_address);
        cmd
    }

    /// Everything the app printed so far.
    pub fn app_log(&self) -> String {
        read(&self.dir.join("app.log"))
    }

    /// Panics, with the app's output, unless the app is still running.
    #[track_caller]
    pub fn assert_running(&mut self) {
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

    /// Runs the AT-SPI tool `tool` (`atspi_dump.py` or `atspi_action.py`) with `args` in the
    /// GUI's [`ToolServer`], starting it if need be; one that failed or did not answer within
    /// `timeout` is stopped, and the next call starts another.
    pub fn run_tool(&self, env: &TestEnv, tool: &str, args: &[&str], timeout: Duration) -> Output {
        let mut slot = self.tools.borrow_mut();
        let server = match slot.take() {
            Some(running) => Ok(running),
            None => ToolServer::start(self, env),
        };
        let result = server.and_then(|mut server| {
            let out = server.run(tool, args, timeout);
            // One that failed is dropped, which stops it.
            if out.is_ok() {
                *slot = Some(server);
            }
            out
        });
        result.unwrap_or_else(|why| Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: format!("{why}\n{}", read(&self.dir.join("atspi-serve.log"))).into_bytes(),
        })
    }

    /// What the window shows now, read once over AT-SPI.
    pub fn dump(&self, env: &TestEnv) -> Result<Value, String> {
        let out = self.run_tool(env, "atspi_dump.py", &[APP_NAME], DUMP_TIMEOUT);
        if !out.status.success() {
            return Err(describe(&out));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", describe(&out)))
    }

    /// Reads the window until `check` passes on two reads in a row (returning the second
    /// tree) or `timeout` runs out (panicking with the last tree and the app's output). Also
    /// panics if the app dies. Two reads, [`SETTLE`] apart: one read can fall between two
    /// steps of one change of the window (rows laid out anew, the note that goes with them not
    /// shown yet), and what the caller asserts on the tree it gets must be the window's state,
    /// not such a moment.
    #[track_caller]
    pub fn wait_for(
        &mut self,
        env: &TestEnv,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last;
        let mut passed = false;
        loop {
            self.assert_running();
            match self.dump(env) {
                Ok(tree) if check(&tree) => {
                    if passed {
                        return tree;
                    }
                    passed = true;
                    std::thread::sleep(SETTLE);
                    continue;
                }
                Ok(tree) => last = outline(&tree),
                Err(e) => last = e,
            }
            passed = false;
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

    /// The path of `tests/tools/NAME` where the GUI's user can run it (with atspi_common.py
    /// beside it, which the AT-SPI tools import).
    pub fn tool(&self, env: &TestEnv, name: &str) -> PathBuf {
        let tools = workspace_dir().join("tests/tools");
        env.user_path(&tools.join("atspi_common.py"));
        env.user_path(&tools.join(name))
    }

    /// Clicks the on-screen, enabled control `role` named `name` over AT-SPI (the "click"
    /// action, as a screen reader user would), retrying until it is there or `timeout` runs
    /// out (then panics with what the window showed).
    #[track_caller]
    pub fn click(&mut self, env: &TestEnv, role: &str, name: &str, timeout: Duration) {
        self.act(env, role, name, &["click"], timeout);
    }

    /// Replaces the text of the on-screen control `role` named `name` (or of the editable text
    /// inside it, as in an entry row) over AT-SPI's EditableText, as typing would; the tool reads
    /// it back. Retries until the control is there or `timeout` runs out (then panics).
    #[track_caller]
    pub fn set_text(
        &mut self,
        env: &TestEnv,
        role: &str,
        name: &str,
        text: &str,
        timeout: Duration,
    ) {
        self.act(env, role, name, &["set-text", text], timeout);
    }

    /// Runs `atspi_action.py` on the control `role` named `name` with `action` until it
    /// succeeds or `timeout` runs out (then panics with what the window showed).
    #[track_caller]
    pub fn act(
        &mut self,
        env: &TestEnv,
        role: &str,
        name: &str,
        action: &[&str],
        timeout: Duration,
    ) {
        let args: Vec<&str> = [APP_NAME, role, name]
            .into_iter()
            .chain(action.iter().copied())
            .collect();
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            let out = self.run_tool(env, "atspi_action.py", &args, DUMP_TIMEOUT);
            if out.status.success() {
                return;
            }
            if Instant::now() >= deadline {
                let shown = self.dump(env).map_or_else(|e| e, |t| outline(&t));
                panic!(
                    "could not {action:?} the {role} {name:?} within {timeout:?}: {}\n--- \
                     window\n{shown}\n--- app log\n{}\n--- helper log\n{}",
                    describe(&out),
                    self.app_log(),
                    env.helper_log()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Shows the page `title` of the window's view switcher.
    #[track_caller]
    pub fn show_page(&mut self, env: &TestEnv, title: &str) {
        self.click(env, "page tab", title, SHOW_TIMEOUT);
    }

    /// Saves the whole screen as `tests/artifacts/NAME`.
    pub fn screenshot(&self, env: &TestEnv, name: &str) -> PathBuf {
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
        self.tools.get_mut().take();
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
pub fn command<S: AsRef<std::ffi::OsStr>>(env: &TestEnv, argv: &[S]) -> Command {
    env.command_as(None, argv)
        .unwrap_or_else(|e| panic!("preparing {:?}: {e:#}", argv.first().map(AsRef::as_ref)))
}

pub fn log_file(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The first line `out` prints within `timeout`, trimmed; empty if none.
pub fn first_line(out: Option<std::process::ChildStdout>, timeout: Duration) -> String {
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
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
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
pub fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if wait_exit(child, Duration::from_secs(5)).is_none() {
        let _ = child.kill();
        let _ = wait_exit(child, Duration::from_secs(5));
    }
}

// --- Reading the accessibility tree ---------------------------------------------------------

pub fn children(node: &Value) -> &[Value] {
    node["children"].as_array().map_or(&[], Vec::as_slice)
}

/// Every node of the tree, depth first.
pub fn nodes(tree: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for window in tree["windows"].as_array().map_or(&[][..], Vec::as_slice) {
        out.push(window);
        out.extend(descendants(window));
    }
    out
}

/// Every node below `node` (not itself), depth first in document order.
pub fn descendants(node: &Value) -> Vec<&Value> {
    pub fn walk<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
        for child in children(node) {
            out.push(child);
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    walk(node, &mut out);
    out
}

pub fn name(node: &Value) -> &str {
    node["name"].as_str().unwrap_or_default()
}

pub fn role(node: &Value) -> &str {
    node["role"].as_str().unwrap_or_default()
}

pub fn is_shown(node: &Value) -> bool {
    node["shown"].as_bool() == Some(true)
}

/// Whether a label reading exactly `text` is on screen.
pub fn shows_label(tree: &Value, text: &str) -> bool {
    nodes(tree)
        .iter()
        .any(|n| role(n) == "label" && name(n) == text && is_shown(n))
}

/// Whether a label containing `text` is on screen.
pub fn shows_label_containing(tree: &Value, text: &str) -> bool {
    nodes(tree)
        .iter()
        .any(|n| role(n) == "label" && name(n).contains(text) && is_shown(n))
}

/// The texts of the labels in the on-screen row titled `title`, other than the title: what the
/// row says about it (e.g. "Live generation" → ["1"]).
pub fn row_values(tree: &Value, title: &str) -> Vec<String> {
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
pub fn vm_rows(tree: &Value) -> Vec<String> {
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

/// Whether a button named `name` (its accessible name) is in the window. GTK 4.8 leaves hidden
/// widgets out of the tree, so this is "visible", though perhaps insensitive.
pub fn has_button(tree: &Value, name: &str) -> bool {
    nodes(tree)
        .iter()
        .any(|n| role(n) == "push button" && self::name(n) == name)
}

/// Whether the button named `name` (its accessible name) is on screen and can be clicked: GTK
/// picks (and so the AT-SPI tool finds at its place) only sensitive widgets.
pub fn shows_button(tree: &Value, name: &str) -> bool {
    nodes(tree)
        .iter()
        .filter(|n| role(n) == "push button" && self::name(n) == name)
        .flat_map(|b| descendants(b))
        .any(|n| role(n) == "label" && is_shown(n))
}

/// The names of the machines on screen in the "My machines" list, sorted.
pub fn machine_rows(tree: &Value) -> Vec<String> {
    let mut out: Vec<String> = nodes(tree)
        .iter()
        .filter(|n| role(n) == "list" && name(n) == "My machines")
        .flat_map(|list| children(list))
        .filter(|row| role(row) == "list item" && is_shown(row))
        .map(|row| name(row).to_owned())
        .collect();
    out.sort();
    out
}

/// The tree as indented lines, for failure messages.
pub fn outline(tree: &Value) -> String {
    pub fn walk(node: &Value, depth: usize, out: &mut String) {
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

pub fn example_policy() -> String {
    let path = workspace_dir().join("data/examples/policy.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Applies `doc` as root (no confirmation needed) and returns the new generation.
pub fn apply_as_root(env: &TestEnv, file: &str, doc: &str) -> u64 {
    let path = env
        .write_file(file, doc)
        .unwrap_or_else(|e| panic!("{e:#}"));
    ok(
        env,
        env.palisadectl(None, &["policy", "apply", &path.to_string_lossy()]),
    );
    generation(env)
}

// --- GTK's file chooser ---------------------------------------------------------------------

/// Opens the location entry of GTK's file chooser titled `title` (Ctrl+L, sent to its window
/// with xdotool: Xvfb has no window manager to give it the focus) and types `path` into it.
pub fn choose_file(gui: &mut Gui, env: &TestEnv, title: &str, path: &Path) {
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    loop {
        let mut cmd = gui.command(
            env,
            &[
                "xdotool",
                "search",
                "--name",
                title,
                "windowfocus",
                "--sync",
                "key",
                "ctrl+l",
            ],
        );
        let out = run_bounded(&mut cmd, Duration::from_secs(20));
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "xdotool could not reach the file chooser {title:?}: {}",
            describe(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    gui.wait_for(env, "the chooser's location entry", UPDATE_TIMEOUT, |t| {
        nodes(t)
            .iter()
            .any(|n| role(n) == "text" && name(n) == "GtkFileChooserEntry")
    });
    gui.set_text(
        env,
        "text",
        "GtkFileChooserEntry",
        &path.to_string_lossy(),
        UPDATE_TIMEOUT,
    );
    gui.click(env, "push button", "_Open Open", UPDATE_TIMEOUT);
}

// --- The Firewall page's editor, as the admin ----------------------------------------------

/// The rows of the generation history, newest first.
pub fn history(env: &TestEnv) -> Value {
    let out = ok(env, env.palisadectl(None, &["--json", "policy", "history"]));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts the app as the admin and opens the editor of the Firewall page.
pub fn open_editor(env: &TestEnv) -> Gui {
    let mut gui = Gui::start_as(env, Some(ADMIN), &[]);
    gui.show_page(env, "Firewall");
    gui.click(env, "push button", "Edit", SHOW_TIMEOUT);
    gui.wait_for(env, "the editable rules of work", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Rules of work (being edited)")
    });
    gui
}

/// Adds "accept tcp 127.0.0.1 port `port`" as work's second rule in the open editor.
pub fn add_work_rule(gui: &mut Gui, env: &TestEnv, port: u16) {
    gui.click(env, "push button", "Add a rule to work", UPDATE_TIMEOUT);
    gui.wait_for(env, "the rule dialog", UPDATE_TIMEOUT, |t| {
        shows_label(t, "New rule for work")
    });
    gui.set_text(
        env,
        "text",
        "Address, network or host name",
        "127.0.0.1",
        UPDATE_TIMEOUT,
    );
    gui.set_text(env, "text", "Ports", &port.to_string(), UPDATE_TIMEOUT);
    gui.wait_for(env, "Save enabled", UPDATE_TIMEOUT, |t| {
        shows_button(t, "_Save Save")
    });
    gui.click(env, "push button", "_Save Save", UPDATE_TIMEOUT);
    let title = format!("2. accept tcp 127.0.0.1 port {port}");
    gui.wait_for(env, "the new rule in the draft", UPDATE_TIMEOUT, |t| {
        shows_label(t, "1 unsaved change") && shows_label(t, &title)
    });
}

/// Applies the draft and keeps it.
pub fn apply_and_keep(gui: &mut Gui, env: &TestEnv) {
    gui.click(env, "push button", "Apply the changes", UPDATE_TIMEOUT);
    gui.wait_for(env, "the keep-or-revert dialog", UPDATE_TIMEOUT, |t| {
        shows_label(t, "Keep these settings?")
    });
    gui.click(env, "push button", "_Keep Keep", UPDATE_TIMEOUT);
    wait_kept(gui, env);
}

/// Waits until the keep-or-revert dialog has gone and the helper has the new generation live
/// (confirmed, no longer waiting for Keep). The toast "The new settings are kept" is not what is
/// checked: GTK 4.8 does not always list a toast among the overlay's accessible children.
pub fn wait_kept(gui: &mut Gui, env: &TestEnv) {
    gui.wait_for(env, "the keep dialog closed", UPDATE_TIMEOUT, |t| {
        !shows_label(t, "Keep these settings?")
    });
    assert!(
        wait_until(UPDATE_TIMEOUT, || history(env)[0]["state"] == "live"),
        "the kept generation is not live: {}",
        history(env)
    );
}
