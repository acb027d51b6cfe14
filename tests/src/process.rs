//! Bounded process handling: every wait here has a deadline, and every child that outlives its
//! deadline is killed.
//!
//! A test harness that can hang is worse than one that fails: CI has a hard time limit and a hung
//! run says nothing about what went wrong. So nothing in this crate blocks on a child without a
//! timeout, and a command that times out still yields an [`Output`] (killed by a signal, with a
//! note on stderr) that the test can assert on and print.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// How often conditions are re-checked while waiting. Short enough that start-up stays quick,
/// long enough not to burn one of the machine's two cores.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The deadline for one command run through [`run_bounded`] unless the caller picks another.
/// Generous because a debug build applying a large policy can take a while; a hang still ends.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Exit status reported for a command that could not even be started (the shell's convention
/// for "command not found").
const SPAWN_FAILED: i32 = 127;

/// Re-checks `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Waits at most `timeout` for `child` to exit; `None` if it is still running.
pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            // An error here means the child was already reaped; there is nothing left to wait for.
            Err(_) => return None,
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(POLL),
        }
    }
}

/// Stops a child: `first` (usually SIGTERM, so it can log its last words), then SIGKILL if it is
/// still there after `grace`. Always reaps it, so no zombie is left behind.
pub(crate) fn stop_child(child: &mut Child, first: Signal, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = signal_child(child, first);
    if wait_exit(child, grace).is_some() {
        return;
    }
    let _ = child.kill();
    // SIGKILL cannot be ignored; the bound only guards against an uninterruptible kernel sleep.
    let _ = wait_exit(child, Duration::from_secs(5));
}

/// Sends `signal` to a child we spawned (and have not reaped, so its pid is still ours).
pub(crate) fn signal_child(child: &Child, signal: Signal) -> nix::Result<()> {
    let pid = i32::try_from(child.id()).map_err(|_| nix::errno::Errno::ESRCH)?;
    kill(Pid::from_raw(pid), signal)
}

/// Runs `cmd` to completion with stdin closed and stdout/stderr captured, killing its whole
/// process group if it is still running after `timeout`.
///
/// Never fails: a command that cannot be started yields exit status 127 with the reason on
/// stderr; one that times out yields "killed by SIGKILL" with a note on stderr.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    // Its own process group, so a timeout also kills whatever the command forked.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => return failed_output(&format!("cannot start {cmd:?}: {err}")),
    };
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());

    let mut timed_out = false;
    let status = match wait_exit(&mut child, timeout) {
        Some(status) => status,
        None => {
            timed_out = true;
            if let Ok(pgid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let _ = child.kill();
            wait_exit(&mut child, Duration::from_secs(5))
                .unwrap_or_else(|| ExitStatus::from_raw(Signal::SIGKILL as i32))
        }
    };

    // The pipes close when the last writer exits. A grandchild that left the process group could
    // keep one open forever, so the readers get a deadline too.
    let stdout = stdout
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    let mut stderr = stderr
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(
            format!("palisade-tests: {cmd:?} still running after {timeout:?}; killed\n").as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The [`Output`] of a command that could not be started: exit status 127 (the shell's "command
/// not found"), the reason on stderr. Lets callers handle one shape for every failure.
pub(crate) fn failed_output(reason: &str) -> Output {
    Output {
        status: ExitStatus::from_raw(SPAWN_FAILED << 8),
        stdout: Vec::new(),
        stderr: format!("palisade-tests: {reason}\n").into_bytes(),
    }
}

/// Reads a pipe to its end on a thread; the result arrives on the returned channel.
fn collect<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// A short random hex string for names that must not collide with a previous or parallel run
/// (netns names, temp dirs). std's `RandomState` is seeded from the OS per instance, so no
/// extra crate is needed; the pid and time are mixed in for good measure.
pub(crate) fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    format!("{:08x}", hasher.finish() as u32)
}

/// The last `max` bytes of a log file, lossily decoded; for error messages and panic dumps.
pub(crate) fn tail(path: &std::path::Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            let prefix = if start > 0 { "[...]\n" } else { "" };
            format!("{prefix}{}", String::from_utf8_lossy(&bytes[start..]))
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// Describes a finished command for an error message: status and both streams.
pub fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Resident memory of `pid` in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of `pid` in KiB by kind: (heap and other anonymous memory, pages of mapped
/// files — the program and its libraries as far as they were run); zeros if it is gone.
pub fn rss_parts_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// How many files `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
