//! [`TestEnv`]: one complete, private Palisade installation per test — network namespace, temp
//! dir, system bus, polkitd and helper — and the means to act on it as a given user.
//!
//! Invariants:
//! - Everything lives in `/tmp/palisade-test-<random>` and netns `pal-<random>`; the host's
//!   firewall, `/etc`, `/usr` and system bus are never touched.
//! - Every command a test runs goes through `ip netns exec` (and `setpriv` for a user), with a
//!   clean environment whose `DBUS_SYSTEM_BUS_ADDRESS` points at the private bus.
//! - Teardown is `Drop`, so it also happens when a test panics: fields drop in declaration
//!   order — helper, polkitd, bus, then the netns (which SIGKILLs whatever is left in it, e.g.
//!   processes a test spawned) and finally the temp dir. During a panic the logs are printed
//!   first, since they are about to be deleted.
//! - Every wait is bounded; see [`crate::process`].

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use nix::sys::signal::Signal;
use palisade_dbus::names::{BUS_NAME, OBJECT_PATH};

use crate::bus::{dbus_send_argv, Bus, FALLBACK_HELPER_POLICY};
use crate::helper::Helper;
use crate::netns::Netns;
use crate::paths::{bin_dir, workspace_dir};
use crate::polkit::Polkit;
use crate::process::{
    describe, failed_output, random_suffix, run_bounded, tail, wait_until, DEFAULT_TIMEOUT,
};
use crate::users::{account, ensure_test_users};

/// Prefix of every temp dir the harness creates; `scripts/cleanup.sh` removes leftovers by it.
pub const TMP_PREFIX: &str = "/tmp/palisade-test-";

/// `PATH` for commands run in the environment: the standard Debian one, so that results do not
/// depend on the environment of whoever runs the tests.
const STD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables passed through from the test's own environment, for debugging.
const PASS_THROUGH: [&str; 2] = ["RUST_BACKTRACE", "RUST_LOG"];

/// A private Palisade installation; see the module doc. Dropping it tears everything down.
#[derive(Debug)]
pub struct TestEnv {
    // Declaration order is teardown order.
    helper: Helper,
    polkit: Polkit,
    bus: Bus,
    netns: Netns,
    dir: TempDir,
    state_dir: PathBuf,
    config_dir: PathBuf,
    vendor_dir: PathBuf,
    bin_dir: PathBuf,
}

impl TestEnv {
    /// Starts everything: test users, netns, bus, polkitd and the helper.
    pub fn start() -> Result<TestEnv> {
        let mut env = TestEnv::start_without_helper()?;
        env.start_helper()?;
        Ok(env)
    }

    /// Starts the test users, netns, bus and polkitd, but not the helper (for tests of the
    /// harness and of polkit's decisions; [`TestEnv::start_helper`] can follow).
    pub fn start_without_helper() -> Result<TestEnv> {
        if !nix::unistd::geteuid().is_root() {
            bail!("the end-to-end tests create users and network namespaces: run them as root");
        }
        ensure_test_users()?;
        let suffix = random_suffix();
        // Each piece is owned by a local until the struct exists, so an error half-way drops
        // (and so cleans up) exactly what was started so far.
        let dir = TempDir::create(&format!("{TMP_PREFIX}{suffix}"))?;
        let state_dir = dir.path.join("state");
        let config_dir = dir.path.join("etc");
        make_dir(&state_dir, 0o700)?;
        make_dir(&config_dir, 0o755)?;
        let vendor_dir = dir.path.join("vendor");
        make_dir(&vendor_dir, 0o755)?;
        let netns = Netns::create(&suffix)?;

        let helper_policy = helper_bus_policy(&dir.path)?;
        let bus = Bus::start(&netns, &dir.path, &helper_policy)?;

        let polkit_dir = dir.path.join("polkit");
        make_dir(&polkit_dir, 0o755)?;
        let mut polkit = Polkit::stage(&polkit_dir, bus.address())?;
        polkit.start(&netns)?;

        let bin_dir = bin_dir();
        let helper = Helper::new(
            bin_dir.join("palisade-helper"),
            bus.address(),
            &state_dir,
            &config_dir,
            &vendor_dir,
            dir.path.join("helper.log"),
        );
        Ok(TestEnv {
            helper,
            polkit,
            bus,
            netns,
            dir,
            state_dir,
            config_dir,
            vendor_dir,
            bin_dir,
        })
    }

    /// Where files go that replace `/etc` files for processes started in the namespace from now
    /// on (see [`Netns::etc_dir`]).
    pub fn netns_etc_dir(&self) -> PathBuf {
        self.netns.etc_dir()
    }

    /// The private bus's address (what `DBUS_SYSTEM_BUS_ADDRESS` is set to).
    pub fn bus_address(&self) -> &str {
        self.bus.address()
    }

    /// The network namespace's name.
    pub fn netns(&self) -> &str {
        self.netns.name()
    }

    /// The temp dir holding everything; commands run with it as their current directory, so
    /// relative paths in their arguments resolve here.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// The helper's `--state-dir`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The helper's `--config-dir`.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The helper's `--vendor-dir` (packages' drop-ins go in its `policy.d`).
    pub fn vendor_dir(&self) -> &Path {
        &self.vendor_dir
    }

    /// Where `palisade-helper` and `palisadectl` are taken from.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Everything the helper printed so far, across restarts.
    pub fn helper_log(&self) -> String {
        std::fs::read_to_string(self.helper.log()).unwrap_or_default()
    }

    /// Everything polkitd printed so far.
    pub fn polkit_log(&self) -> String {
        std::fs::read_to_string(self.polkit.log()).unwrap_or_default()
    }

    /// Everything dbus-daemon printed so far.
    pub fn bus_log(&self) -> String {
        std::fs::read_to_string(self.bus.log()).unwrap_or_default()
    }

    /// Writes `contents` to `name` in the temp dir, readable by the test users (who may have to
    /// read it, e.g. `palisadectl validate FILE` runs as them).
    pub fn write_file(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf> {
        let path = self.dir.path.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        Ok(path)
    }

    /// A command that runs `argv` inside the netns as `user` (`None` = root) with a clean
    /// environment pointing at the private bus. For full control over stdio or the environment;
    /// [`TestEnv::run_as`] and [`TestEnv::spawn_as`] cover the usual cases.
    pub fn command_as<S: AsRef<OsStr>>(&self, user: Option<&str>, argv: &[S]) -> Result<Command> {
        if argv.is_empty() {
            bail!("command_as needs a program to run");
        }
        let mut full: Vec<OsString> = Vec::new();
        let (name, home) = match user {
            Some(user) => {
                let acct = account(user)?;
                // setpriv rather than runuser/su: no PAM, no login session, nothing but the ids,
                // which is what the kernel (meta skuid) and polkit (unix-process) look at.
                full.extend(
                    [
                        "setpriv".to_owned(),
                        format!("--reuid={}", acct.uid),
                        format!("--regid={}", acct.gid),
                        "--init-groups".to_owned(),
                        "--".to_owned(),
                    ]
                    .map(OsString::from),
                );
                (acct.name, acct.home)
            }
            None => ("root".to_owned(), "/root".to_owned()),
        };
        full.extend(argv.iter().map(|arg| arg.as_ref().to_owned()));
        let mut cmd = self.netns.command(&full);
        cmd.env_clear()
            .env("PATH", STD_PATH)
            .env("HOME", home)
            .env("USER", &name)
            .env("LOGNAME", &name)
            .env("LANG", "C.UTF-8")
            // Plain text in captured output and logs, not terminal colour codes.
            .env("NO_COLOR", "1")
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            .current_dir(&self.dir.path);
        for var in PASS_THROUGH {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        Ok(cmd)
    }

    /// Runs `argv` as `user` inside the netns and returns its output; killed after
    /// [`DEFAULT_TIMEOUT`]. Never fails: problems starting it show as exit status 127 with the
    /// reason on stderr.
    pub fn run_as<S: AsRef<OsStr>>(&self, user: Option<&str>, argv: &[S]) -> Output {
        self.run_as_timeout(user, argv, DEFAULT_TIMEOUT)
    }

    /// [`TestEnv::run_as`] with an explicit deadline.
    pub fn run_as_timeout<S: AsRef<OsStr>>(
        &self,
        user: Option<&str>,
        argv: &[S],
        timeout: Duration,
    ) -> Output {
        match self.command_as(user, argv) {
            Ok(mut cmd) => run_bounded(&mut cmd, timeout),
            Err(err) => failed_output(&format!("{err:#}")),
        }
    }

    /// Starts `argv` as `user` inside the netns and returns at once, with stdin closed and
    /// stdout/stderr piped (read them, or a chatty child blocks). The child is killed when the
    /// environment is dropped, if not before.
    pub fn spawn_as<S: AsRef<OsStr>>(&self, user: Option<&str>, argv: &[S]) -> Result<Child> {
        let mut cmd = self.command_as(user, argv)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn()
            .with_context(|| format!("starting {:?}", argv.first().map(AsRef::as_ref)))
    }

    /// Python's `http.server` serving `dir` on 127.0.0.1:`port` inside the netns, as root
    /// (started, not yet necessarily listening): the lists' downloads in tests and the bench.
    pub fn spawn_http_server(&self, port: u16, dir: &Path) -> Result<Child> {
        self.spawn_as(
            None,
            &[
                "python3".to_owned(),
                "-m".to_owned(),
                "http.server".to_owned(),
                port.to_string(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--directory".to_owned(),
                dir.to_string_lossy().into_owned(),
            ],
        )
    }

    /// `path` if every user can read and run it where it is; otherwise a copy in the
    /// environment's dir (made once). A checkout under a private home (CI may clone anywhere)
    /// would otherwise keep the test users from running the binaries and tools under test.
    pub fn user_path(&self, path: &Path) -> PathBuf {
        if crate::paths::reachable_by_everyone(path) {
            return path.to_owned();
        }
        let shared = self.dir.path.join("shared");
        let copy = shared.join(path.file_name().unwrap_or_default());
        if !copy.exists() {
            let made = if shared.is_dir() {
                Ok(())
            } else {
                make_dir(&shared, 0o755)
            };
            let copied = made.and_then(|()| {
                std::fs::copy(path, &copy)
                    .with_context(|| format!("copying {} for the test users", path.display()))?;
                std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
                Ok(())
            });
            if let Err(e) = copied {
                eprintln!("palisade-tests: {e:#}");
            }
        }
        copy
    }

    /// Runs `palisadectl ARGS` as `user`.
    pub fn palisadectl(&self, user: Option<&str>, args: &[&str]) -> Output {
        let ctl = self.user_path(&self.bin_dir.join("palisadectl"));
        let mut argv: Vec<OsString> = vec![ctl.into_os_string()];
        argv.extend(args.iter().map(OsString::from));
        self.run_as(user, &argv)
    }

    /// Runs `nft ARGS` as root inside the netns.
    pub fn nft(&self, args: &[&str]) -> Output {
        let mut argv = vec!["nft"];
        argv.extend_from_slice(args);
        self.run_as(None, &argv)
    }

    /// Calls `method` (`interface.Member`) on `dest` at `path` with `dbus-send` as `user`;
    /// `args` are dbus-send's typed arguments (`string:x`, `uint64:3`, ...). The reply is
    /// printed literally on stdout; a D-Bus error makes the exit status non-zero and its name
    /// and message appear on stderr.
    pub fn dbus_send_as(
        &self,
        user: Option<&str>,
        dest: &str,
        path: &str,
        method: &str,
        args: &[&str],
    ) -> Output {
        self.run_as(user, &dbus_send_argv(dest, path, method, args))
    }

    /// [`TestEnv::dbus_send_as`] to the helper's object.
    pub fn call_helper_as(
        &self,
        user: Option<&str>,
        interface: &str,
        member: &str,
        args: &[&str],
    ) -> Output {
        self.dbus_send_as(
            user,
            BUS_NAME,
            OBJECT_PATH,
            &format!("{interface}.{member}"),
            args,
        )
    }

    /// The helper's introspection XML for its object.
    pub fn introspect(&self) -> Result<String> {
        self.introspect_path(OBJECT_PATH)
    }

    /// The helper's introspection XML for `path` (its children appear as `<node name=...>`).
    pub fn introspect_path(&self, path: &str) -> Result<String> {
        let out = self.dbus_send_as(
            None,
            BUS_NAME,
            path,
            "org.freedesktop.DBus.Introspectable.Introspect",
            &[],
        );
        if !out.status.success() {
            bail!("introspecting {path} failed: {}", describe(&out));
        }
        Ok(String::from_utf8(out.stdout)
            .context("introspection XML is not UTF-8")?
            .trim()
            .to_owned())
    }

    /// Asks polkit, with `pkcheck`, whether a process of `user` may do `action`: exit status 0
    /// means yes, 1 no, 2 only after authentication. The subject is a real process running as
    /// that user (a `sleep`), as the helper's subjects are.
    pub fn pkcheck(&self, user: &str, action: &str) -> Result<Output> {
        let uid = account(user)?.uid;
        let mut subject = self.spawn_as(Some(user), &["sleep", "30"])?;
        // Until setpriv has switched ids the pid still belongs to root; polkit would judge root.
        let pid = subject.id();
        let switched = wait_until(Duration::from_secs(5), || real_uid(pid) == Some(uid));
        let out = if switched {
            Ok(self.run_as(
                None,
                &[
                    "pkcheck",
                    "--action-id",
                    action,
                    "--process",
                    &pid.to_string(),
                ],
            ))
        } else {
            Err(anyhow::anyhow!("process {pid} never ran as {user}"))
        };
        let _ = subject.kill();
        let _ = subject.wait();
        out
    }

    /// Starts the helper (again), with the same bus, dirs and log.
    pub fn start_helper(&mut self) -> Result<()> {
        self.helper.start(&self.netns)
    }

    /// Kills the private bus daemon, as a crash would.
    pub fn kill_bus(&mut self) {
        self.bus.kill();
    }

    /// Waits up to `timeout` for the helper to exit by itself; its status, or `None`.
    pub fn wait_helper_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.helper.wait_exit(timeout)
    }

    /// Stops the helper gracefully (SIGTERM, then SIGKILL).
    pub fn stop_helper(&mut self) {
        self.helper.stop();
    }

    /// Sends `signal` to the helper; for signals that end it, waits until it is gone and its bus
    /// name is free.
    pub fn kill_helper(&mut self, signal: Signal) -> Result<()> {
        self.helper.kill(signal)
    }

    /// The helper's pid while it runs.
    pub fn helper_pid(&self) -> Option<u32> {
        self.helper.pid()
    }

    /// Stops polkitd and waits until its name is gone from the bus.
    pub fn stop_polkit(&mut self) {
        self.polkit.stop();
    }

    /// Starts polkitd again and waits until it owns its name.
    pub fn start_polkit(&mut self) -> Result<()> {
        self.polkit.start(&self.netns)
    }

    /// The uid of `user`.
    pub fn uid_of(&self, user: &str) -> Result<u32> {
        crate::users::uid_of(user)
    }

    /// Pids of every process currently in the netns (the helper, polkitd, the bus and whatever
    /// a test spawned).
    pub fn netns_pids(&self) -> Vec<i32> {
        self.netns.pids()
    }

    /// Prints the helper's, polkitd's and the bus's logs to stderr.
    pub fn dump_logs(&self) {
        for (what, path) in [
            ("helper", self.helper.log()),
            ("polkitd", self.polkit.log()),
            ("dbus-daemon", self.bus.log()),
        ] {
            if path.exists() {
                let text = tail(path, 64 * 1024);
                eprintln!("----- {what} log ({}) -----\n{text}", path.display());
            } else {
                eprintln!("----- {what}: never started -----");
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "palisade-tests: test failed in netns {} with temp dir {}",
                self.netns.name(),
                self.dir.path.display()
            );
            self.dump_logs();
        }
        // The fields now drop in declaration order; see the module doc.
    }
}

/// A directory removed with everything in it on drop, unless `PALISADE_KEEP_TMP` is set (to
/// look at a failed run's files).
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create(path: &str) -> Result<TempDir> {
        let path = PathBuf::from(path);
        // create_dir, not create_dir_all: an existing directory is someone else's, not ours.
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        // Traversable by everyone: test users connect to the bus socket in here and read files
        // written for them. Nothing secret is kept here (state_dir is 0700).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("PALISADE_KEEP_TMP").is_some() {
            eprintln!("palisade-tests: keeping {}", self.path.display());
            return;
        }
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!(
                "palisade-tests: cannot remove {}: {err}",
                self.path.display()
            );
        }
    }
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The repo's bus policy for the helper, or a generated equivalent written into `dir` while the
/// repo has none.
fn helper_bus_policy(dir: &Path) -> Result<PathBuf> {
    let repo = workspace_dir().join("data/dbus/io.palisade.Helper1.conf");
    if repo.is_file() {
        return Ok(repo);
    }
    eprintln!(
        "palisade-tests: {} missing, using a generated policy",
        repo.display()
    );
    let generated = dir.join("io.palisade.Helper1.conf");
    std::fs::write(&generated, FALLBACK_HELPER_POLICY)
        .with_context(|| format!("writing {}", generated.display()))?;
    Ok(generated)
}

/// The real uid of process `pid`, from `/proc/PID/status` ("Uid:\treal\teffective\t...").
fn real_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
