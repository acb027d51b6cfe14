//! The demo installation `make demo` shows and `make screenshots` photographs: a private Palisade
//! loaded with the example policy plus a VM `demo` that boots the tiny test guest, listeners on
//! the host for the guest's tries, and the app started as the demo admin `pal-admin` (a member
//! of `palisade-admin`) on an X display, with a session bus of its own. The GUI never runs as
//! root, not even here.
//!
//! The guest tries two ports of the host every 5 s: 8443, which its rules allow, and 8444, which
//! they do not, and prints each try on its serial log and its screen.

use crate::{account, install_guest_kernel, run_bounded, workspace_dir, TestEnv, ADMIN};
use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The demo VM's entry, after the example policy.
pub const DEMO_VM: &str = r#"
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

/// Variables of the caller's environment handed on to the demo's app: the viewer (tests record
/// it), the renderer (Xvfb has no GPU), the language and catalogues, libadwaita's colour scheme.
const APP_PASS_THROUGH: [&str; 6] = [
    "PALISADE_VIEWER",
    "GSK_RENDERER",
    "LANGUAGE",
    "PALISADE_LOCALEDIR",
    "ADW_DEBUG_COLOR_SCHEME",
    "GSETTINGS_BACKEND",
];

/// The demo's installation, with VM `demo` running.
pub struct Demo {
    /// Declared first: dropped (killed) before the environment goes.
    listeners: Child,
    /// What the guest reported in its first round (one line per result).
    pub results: String,
    pub env: TestEnv,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.listeners.kill();
        let _ = self.listeners.wait();
    }
}

impl Demo {
    /// Starts the environment, applies the example policy with VM `demo`, boots it and waits
    /// for the guest's first results. KVM when the machine has it; `tcg` for machines whose KVM
    /// starts guests that never run (then, too, a guest that reports nothing within 40 s under
    /// KVM is started again without it). `say` gets what a person watching should know.
    pub fn start(tcg: bool, say: impl Fn(&str)) -> Result<Demo> {
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
        let listeners = listen(&env)?;
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
            say("The guest said nothing under KVM within 40 s; starting it again without KVM.");
            palisadectl(&env, &["vm", "stop", "demo", "--force"])?;
            let _ = std::fs::remove_file(console_log(&env));
            results = boot(true)?;
        }
        Ok(Demo {
            listeners,
            results,
            env,
        })
    }

    /// The guest's serial log.
    pub fn console_log(&self) -> PathBuf {
        console_log(&self.env)
    }

    /// Lets the demo admin draw on `display` and starts the app as that user, with a session
    /// bus of its own and the demo's system bus.
    pub fn start_app(&self, display: &str) -> Result<DemoApp> {
        DemoApp::start(&self.env, display, &[])
    }

    /// [`Demo::start_app`] with `extra` added to the app's environment (after the variables
    /// passed through from this process's).
    pub fn start_app_with(&self, display: &str, extra: &[(&str, &OsStr)]) -> Result<DemoApp> {
        DemoApp::start(&self.env, display, extra)
    }
}

/// `palisadectl ARGS` as the demo admin; its output, or an error with what it said.
pub fn palisadectl(env: &TestEnv, args: &[&str]) -> Result<String> {
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
        let _ = child.wait();
        return Err(anyhow!("the demo's listeners did not start"));
    }
    Ok(child)
}

fn console_log(env: &TestEnv) -> PathBuf {
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

/// The app as the demo admin on an X display, with its own session bus (through which the
/// AT-SPI bus is started on demand). Dropping it stops the app, the bus and what the bus
/// started.
#[derive(Debug)]
pub struct DemoApp {
    app: Child,
    /// The session bus daemon, leader of the process group.
    bus: Child,
    session: Session,
    log: PathBuf,
    /// Just before the program was started.
    started: Instant,
}

impl DemoApp {
    fn start(env: &TestEnv, display: &str, extra: &[(&str, &OsStr)]) -> Result<DemoApp> {
        DemoApp::start_program(env, display, &env.bin_dir().join("palisade"), extra)
    }

    /// Starts `program` (the app, or the bench's bare window) as the demo admin on `display`
    /// in `env`, with a session bus of its own and `extra` added to its environment.
    pub fn start_program(
        env: &TestEnv,
        display: &str,
        program: &Path,
        extra: &[(&str, &OsStr)],
    ) -> Result<DemoApp> {
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
        let owner = account(ADMIN)?;
        for dir in [&home, &runtime] {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            nix::unistd::chown(
                dir.as_path(),
                Some(nix::unistd::Uid::from_raw(owner.uid)),
                Some(nix::unistd::Gid::from_raw(owner.gid)),
            )?;
        }
        let socket = runtime.join("bus");
        let session_address = format!("unix:path={}", socket.display());
        let log = env.dir().join("demo-app.log");
        let session = Session {
            display: display.to_owned(),
            home,
            runtime,
            session_address,
        };
        // The session bus leads a process group that what it activates (the AT-SPI bus
        // launcher, the bus and its registry) joins, so one signal stops them all.
        let mut cmd = session.command(
            env,
            &[
                OsStr::new("dbus-daemon"),
                OsStr::new("--session"),
                OsStr::new("--nofork"),
                OsStr::new(&format!("--address={}", session.session_address)),
            ],
        )?;
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut bus = cmd
            .spawn()
            .context("starting a session bus (dbus-daemon)")?;
        if !crate::wait_until(Duration::from_secs(10), || {
            UnixStream::connect(&socket).is_ok()
        }) {
            stop_group(&mut bus);
            return Err(anyhow!("the app's session bus did not listen within 10 s"));
        }
        let app = env.user_path(program);
        let mut cmd = session.command(env, &[app.as_os_str()])?;
        cmd.env("GDK_BACKEND", "x11");
        for var in APP_PASS_THROUGH {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        for (key, value) in extra {
            cmd.env(key, value);
        }
        let out = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if let Ok(pgid) = i32::try_from(bus.id()) {
            cmd.process_group(pgid);
        }
        let started = Instant::now();
        let app = match cmd.spawn() {
            Ok(app) => app,
            Err(e) => {
                stop_group(&mut bus);
                return Err(anyhow!("starting {}: {e}", app.display()));
            }
        };
        Ok(DemoApp {
            app,
            bus,
            session,
            log,
            started,
        })
    }

    /// When the program was started (just before the process was made).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The app's process id.
    pub fn pid(&self) -> u32 {
        self.app.id()
    }

    /// The app's session bus (the AT-SPI tools need it).
    pub fn session_address(&self) -> &str {
        &self.session.session_address
    }

    /// The X display the app draws on.
    pub fn display(&self) -> &str {
        &self.session.display
    }

    /// Where the app's output goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Whether the app still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.app.try_wait(), Ok(None))
    }

    /// A command run in `env` as the demo admin with the app's display, home, runtime folder and
    /// session bus: for the AT-SPI tools, xdotool and screenshots.
    pub fn command<S: AsRef<OsStr>>(&self, env: &TestEnv, argv: &[S]) -> Result<Command> {
        self.session.command(env, argv)
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.app.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if !crate::wait_until(Duration::from_secs(5), || {
            matches!(self.app.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.app.kill();
        }
        let _ = self.app.wait();
        stop_group(&mut self.bus);
    }
}

/// The app's session: what every command run in it gets.
#[derive(Debug)]
struct Session {
    display: String,
    home: PathBuf,
    runtime: PathBuf,
    session_address: String,
}

impl Session {
    fn command<S: AsRef<OsStr>>(&self, env: &TestEnv, argv: &[S]) -> Result<Command> {
        let mut cmd = env.command_as(Some(ADMIN), argv)?;
        cmd.env("DISPLAY", &self.display)
            .env("HOME", &self.home)
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.session_address);
        Ok(cmd)
    }
}

/// Stops the process group `leader` leads: SIGTERM, then SIGKILL; the leader is reaped.
fn stop_group(leader: &mut Child) {
    if let Ok(pgid) = i32::try_from(leader.id()) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        if !crate::wait_until(Duration::from_secs(5), || {
            matches!(leader.try_wait(), Ok(Some(_)))
        }) {
            let _ = leader.kill();
        }
        let _ = leader.wait();
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}
