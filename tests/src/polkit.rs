//! The real `polkitd`, on the private bus, deciding with the repository's actions and rules.
//!
//! polkitd has no option to read its actions or rules from elsewhere, and the host's `/etc` and
//! `/usr` must not change. So it is started in a private mount namespace (`unshare --mount`,
//! nested inside the test's netns, whose `ip netns exec` already made `/` a slave mount) where
//! three bind mounts replace, for it alone:
//! - `/usr/share/polkit-1/actions` with the repo's `polkit/io.palisade.policy` (plus polkit's own
//!   actions file, which it consults for `org.freedesktop.policykit.*`);
//! - `/usr/share/polkit-1/rules.d` with the repo's `polkit/*.rules` (the shipped rules, where a
//!   package installs them);
//! - `/etc/polkit-1/rules.d` with `tests/polkit/*.rules` (the test users' rules, where a local
//!   admin would put them).
//!
//! Nothing else from the host's rules (e.g. Debian's "sudo group is admin") takes part, so
//! decisions depend only on files in this repository.
//!
//! What polkitd 122 needs, found by trying: started as root, it switches to the `polkitd` user
//! itself before connecting (the bus policy lets only that user own `org.freedesktop.PolicyKit1`),
//! so the staged rules dirs belong to `polkitd`, as the packaged ones do. It needs no state dir,
//! no `--replace` (nobody else owns the name on a private bus) and no logind: rules that return
//! YES/NO decide regardless of sessions. Without `--no-debug` it logs which rules it loaded,
//! which is what one wants to see when a test fails.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use nix::sys::signal::Signal;
use palisade_dbus::names::Action;

use crate::bus::wait_for_name;
use crate::netns::Netns;
use crate::paths::workspace_dir;
use crate::process::{stop_child, tail};

/// polkit's well-known bus name.
pub const POLKIT_BUS_NAME: &str = "org.freedesktop.PolicyKit1";
const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
const ACTIONS_DIR: &str = "/usr/share/polkit-1/actions";
const VENDOR_RULES_DIR: &str = "/usr/share/polkit-1/rules.d";
const LOCAL_RULES_DIR: &str = "/etc/polkit-1/rules.d";
const POLKIT_OWN_ACTIONS: &str = "/usr/share/polkit-1/actions/org.freedesktop.policykit.policy";

/// polkitd's staged configuration and, while running, its process.
#[derive(Debug)]
pub struct Polkit {
    actions: PathBuf,
    vendor_rules: PathBuf,
    local_rules: PathBuf,
    log: PathBuf,
    address: String,
    child: Option<Child>,
}

impl Polkit {
    /// Copies actions and rules into `dir` (see the module doc); does not start anything yet.
    pub fn stage(dir: &Path, bus_address: &str) -> Result<Polkit> {
        for target in [ACTIONS_DIR, VENDOR_RULES_DIR, LOCAL_RULES_DIR] {
            if !Path::new(target).is_dir() {
                bail!("{target} is missing: install package polkitd");
            }
        }
        if !Path::new(POLKITD).is_file() {
            bail!("{POLKITD} is missing: install package polkitd");
        }
        let polkit = Polkit {
            actions: dir.join("actions"),
            vendor_rules: dir.join("rules.d-usr"),
            local_rules: dir.join("rules.d-etc"),
            log: dir.join("polkitd.log"),
            address: bus_address.to_owned(),
            child: None,
        };
        for sub in [&polkit.actions, &polkit.vendor_rules, &polkit.local_rules] {
            fs::create_dir_all(sub).with_context(|| format!("creating {}", sub.display()))?;
        }

        let repo = workspace_dir();
        let policy = repo.join("polkit/io.palisade.policy");
        let staged_policy = polkit.actions.join("io.palisade.policy");
        if policy.is_file() {
            copy(&policy, &staged_policy)?;
        } else {
            eprintln!(
                "palisade-tests: {} missing, using a generated one",
                policy.display()
            );
            write(&staged_policy, &fallback_actions())?;
        }
        if Path::new(POLKIT_OWN_ACTIONS).is_file() {
            copy(
                Path::new(POLKIT_OWN_ACTIONS),
                &polkit.actions.join("org.freedesktop.policykit.policy"),
            )?;
        }

        let shipped = copy_rules(&repo.join("polkit"), &polkit.vendor_rules)?;
        if shipped == 0 {
            eprintln!("palisade-tests: no polkit/*.rules in the repo, using a generated one");
            write(
                &polkit.vendor_rules.join("50-io.palisade.rules"),
                FALLBACK_ADMIN_RULE,
            )?;
        }
        if copy_rules(&repo.join("tests/polkit"), &polkit.local_rules)? == 0 {
            bail!("no tests/polkit/*.rules found; the test users' rules are missing");
        }

        // As packaged: rules dirs belong to polkitd (which reads them after dropping root) and
        // nobody else may list them.
        if let Ok(Some(user)) = nix::unistd::User::from_name("polkitd") {
            for rules in [&polkit.vendor_rules, &polkit.local_rules] {
                nix::unistd::chown(rules, Some(user.uid), None)
                    .with_context(|| format!("chown polkitd {}", rules.display()))?;
                fs::set_permissions(rules, fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok(polkit)
    }

    /// Starts polkitd inside `netns` and waits (at most 10 s) until it owns its bus name.
    pub fn start(&mut self, netns: &Netns) -> Result<()> {
        if self.is_running() {
            bail!("polkitd is already running");
        }
        // Each start appends, so a log spans restarts and shows them.
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        writeln!(log, "=== palisade-tests: starting polkitd")?;
        let script = concat!(
            "mount --bind \"$1\" \"$4\" && mount --bind \"$2\" \"$5\" && ",
            "mount --bind \"$3\" \"$6\" && exec \"$7\""
        );
        let argv: Vec<&std::ffi::OsStr> = vec![
            "unshare".as_ref(),
            "--mount".as_ref(),
            "--propagation".as_ref(),
            "private".as_ref(),
            "--".as_ref(),
            "sh".as_ref(),
            "-c".as_ref(),
            script.as_ref(),
            "sh".as_ref(),
            self.actions.as_os_str(),
            self.vendor_rules.as_os_str(),
            self.local_rules.as_os_str(),
            ACTIONS_DIR.as_ref(),
            VENDOR_RULES_DIR.as_ref(),
            LOCAL_RULES_DIR.as_ref(),
            POLKITD.as_ref(),
        ];
        let child = netns
            .command(&argv)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting polkitd")?;
        self.child = Some(child);

        let address = self.address.clone();
        let waited = wait_for_name(
            &address,
            POLKIT_BUS_NAME,
            true,
            Duration::from_secs(10),
            || self.is_running(),
        );
        if let Err(err) = waited {
            self.stop();
            bail!(
                "polkitd did not come up: {err:#}\npolkitd log:\n{}",
                tail(&self.log, 8192)
            );
        }
        Ok(())
    }

    /// Stops polkitd (SIGTERM, then SIGKILL after 2 s) and waits until its name is released.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::SIGTERM, Duration::from_secs(2));
        }
        // The bus drops the name when the connection closes; this is quick but not synchronous.
        let _ = wait_for_name(
            &self.address,
            POLKIT_BUS_NAME,
            false,
            Duration::from_secs(5),
            || true,
        );
    }

    /// Whether the polkitd process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// polkitd's stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for Polkit {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::SIGTERM, Duration::from_secs(2));
        }
    }
}

/// Copies every `*.rules` file in `from` into `to`; returns how many.
fn copy_rules(from: &Path, to: &Path) -> Result<usize> {
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(0);
    };
    let mut count = 0;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rules") && path.is_file() {
            if let Some(name) = path.file_name() {
                copy(&path, &to.join(name))?;
                count += 1;
            }
        }
    }
    Ok(count)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

fn write(to: &Path, text: &str) -> Result<()> {
    fs::write(to, text).with_context(|| format!("writing {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// What `polkit/50-io.palisade.rules` must say, for when the repo does not have it yet.
const FALLBACK_ADMIN_RULE: &str = r#"// Generated by palisade-tests: polkit/*.rules is missing.
polkit.addRule(function (action, subject) {
    if (action.id.indexOf("io.palisade.") === 0 && subject.isInGroup("palisade-admin")) {
        return polkit.Result.YES;
    }
    return polkit.Result.NOT_HANDLED;
});
"#;

/// A minimal `io.palisade.policy`, for when the repo does not have it yet: every action exists,
/// changes need an admin, use needs an active session.
fn fallback_actions() -> String {
    let mut xml = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE policyconfig PUBLIC \"-//freedesktop//DTD PolicyKit Policy Configuration 1.0//EN\"\n",
        " \"http://www.freedesktop.org/standards/PolicyKit/1.0/policyconfig.dtd\">\n",
        "<!-- Generated by palisade-tests: polkit/io.palisade.policy is missing. -->\n",
        "<policyconfig>\n  <vendor>Palisade</vendor>\n",
    ));
    for action in Action::ALL {
        let active = match action {
            Action::PolicyRead | Action::VmOperate | Action::ConsoleOpen => "yes",
            Action::PolicyManage | Action::VmManage | Action::LogRead => "auth_admin_keep",
        };
        xml.push_str(&format!(
            concat!(
                "  <action id=\"{id}\">\n    <description>{id}</description>\n",
                "    <message>Authentication is required for {id}</message>\n",
                "    <defaults><allow_any>no</allow_any><allow_inactive>no</allow_inactive>",
                "<allow_active>{active}</allow_active></defaults>\n  </action>\n"
            ),
            id = action.id(),
            active = active,
        ));
    }
    xml.push_str("</policyconfig>\n");
    xml
}
