//! Authorization the desktop way: the calls a person starts with a button are sent with D-Bus's
//! *allow interactive authorization* flag, so that when polkit wants a password the desktop's
//! polkit agent asks for it instead of the helper refusing at once. They are the Blocklists
//! page's import (from a file or an address), update and removal (`policy.manage`:
//! `auth_admin_keep` by default), the machines page's **Start**, **Stop**, **Open console** and
//! USB attach/detach (`vm.operate`, `console.open`: allowed in an active session by default, so
//! there the flag matters only where a site's rules ask for a password), and its admin
//! controls: create, install, update mode, promote, discard, restore, delete (`vm.manage`). Reads never set it, nor does
//! anything the app does by itself (the drop log it follows, the counters it reads every few
//! seconds): a password dialog comes only after a click.
//!
//! Before a page shows such a button it asks polkit, never interactively, whether this user
//! could do it at all ([`permission`]): a user polkit refuses outright (no password would help)
//! is not shown edit controls that can only fail.
//!
//! The shared proxies of `palisade-dbus` stay non-interactive: `palisadectl` and the tests use
//! them, and a script must never wait for a password dialog. So the calls here go through the
//! proxy's `call_with_flags` with the method's name and arguments as `dbus/src/proxy.rs` declares
//! them. They wait [`PROMPT_TIMEOUT`] longer than the work itself may take: the helper gives
//! polkit up to 120 s for an interactive check (`INTERACTIVE_TIMEOUT` in `helper/src/authz.rs`)
//! before it starts. Reads keep the window connection's short timeout.
//!
//! A refused password, a dismissed dialog or a desktop without a polkit agent come back as the
//! helper's `NotAuthorized` sentence, which the pages show as it is, in one sentence.

use crate::machines::NewBridge;
use palisade_dbus::names::Action;
use palisade_dbus::proxy::{BlocklistsProxy, ConsolesProxy, PolicyProxy, VmsProxy};
use palisade_dbus::types::{Applied, BlocklistInfo, Client, ConsoleTicket, RunMode, VmInfo};
use palisade_dbus::Error;
use std::collections::HashMap;
use std::fs::File;
use std::time::Duration;
use zbus::proxy::MethodFlags;
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

/// How much longer than its work a call that may ask for a password may take: the helper's
/// 120 s for polkit's interactive check, and a margin, so that the helper's own sentence ("no
/// answer within 120 s") arrives rather than a timeout of ours.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(130);

/// Calls `method` of `proxy` with `body` (a [`zbus::DynamicTuple`] of the method's arguments),
/// allowing polkit to ask for a password, and gives up after `work` plus [`PROMPT_TIMEOUT`].
///
/// `call_with_flags` does not apply the connection's method timeout (zbus 6 waits for the reply
/// as long as it takes), so the timeout here is the only one and the window's connection can be
/// used.
async fn call<B, R>(
    proxy: &zbus::Proxy<'_>,
    method: &'static str,
    body: &B,
    work: Duration,
) -> Result<R, Error>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    let reply = proxy.call_with_flags(method, MethodFlags::ALLOW_INTERACTIVE_AUTH, body);
    match tokio::time::timeout(work + PROMPT_TIMEOUT, reply).await {
        Ok(Ok(Some(reply))) => Ok(reply),
        // Only a call flagged NO_REPLY_EXPECTED comes back without a reply.
        Ok(Ok(None)) => Err(Error::Internal(format!("{method} returned no reply"))),
        // The helper's error names map to their variants, with its sentence.
        Ok(Err(e)) => Err(Error::from(e)),
        // What zbus itself says when a connection's method timeout runs out.
        Err(_) => Err(Error::ZBus(zbus::Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        )))),
    }
}

/// `Blocklists.Import` of the list in `file` (opened by this app, as the user).
pub async fn import_list(
    proxy: &BlocklistsProxy<'_>,
    name: &str,
    file: &File,
    format: &str,
    strict: bool,
    force: bool,
    work: Duration,
) -> Result<BlocklistInfo, Error> {
    let body = zbus::DynamicTuple((name, zbus::Fd::from(file), format, strict, force));
    call(proxy.inner(), "Import", &body, work).await
}

/// `Blocklists.ImportUrl`.
#[allow(clippy::too_many_arguments)] // reason: the D-Bus method's arguments, plus the time
pub async fn import_list_url(
    proxy: &BlocklistsProxy<'_>,
    name: &str,
    url: &str,
    refresh_seconds: u32,
    format: &str,
    strict: bool,
    force: bool,
    work: Duration,
) -> Result<BlocklistInfo, Error> {
    let body = zbus::DynamicTuple((name, url, refresh_seconds, format, strict, force));
    call(proxy.inner(), "ImportUrl", &body, work).await
}

/// `Blocklists.Refresh`.
pub async fn refresh_list(
    proxy: &BlocklistsProxy<'_>,
    name: &str,
    work: Duration,
) -> Result<BlocklistInfo, Error> {
    call(proxy.inner(), "Refresh", &zbus::DynamicTuple((name,)), work).await
}

/// `Blocklists.Remove`.
pub async fn remove_list(
    proxy: &BlocklistsProxy<'_>,
    name: &str,
    work: Duration,
) -> Result<(), Error> {
    call(proxy.inner(), "Remove", &zbus::DynamicTuple((name,)), work).await
}

/// `Vms.Start`.
pub async fn start_vm(
    proxy: &VmsProxy<'_>,
    name: &str,
    mode: RunMode,
    work: Duration,
) -> Result<VmInfo, Error> {
    call(
        proxy.inner(),
        "Start",
        &zbus::DynamicTuple((name, mode)),
        work,
    )
    .await
}

/// `Vms.Stop`.
pub async fn stop_vm(
    proxy: &VmsProxy<'_>,
    name: &str,
    force: bool,
    timeout_seconds: u32,
    work: Duration,
) -> Result<(), Error> {
    let body = zbus::DynamicTuple((name, force, timeout_seconds));
    call(proxy.inner(), "Stop", &body, work).await
}

/// `Vms.Create` of a user-mode VM; returns the policy generation that added it.
pub async fn create_vm(
    proxy: &VmsProxy<'_>,
    name: &str,
    disk_size: &str,
    memory: &str,
    cpus: u32,
    work: Duration,
) -> Result<u64, Error> {
    let body = zbus::DynamicTuple((name, disk_size, memory, cpus));
    call(proxy.inner(), "Create", &body, work).await
}

/// `Vms.CreateBridged`: a VM on the lab network `bridge.network`; returns the policy generation
/// that added it.
pub async fn create_bridged_vm(
    proxy: &VmsProxy<'_>,
    name: &str,
    disk_size: &str,
    memory: &str,
    cpus: u32,
    bridge: &NewBridge,
    work: Duration,
) -> Result<u64, Error> {
    let body = zbus::DynamicTuple((
        name,
        disk_size,
        memory,
        cpus,
        bridge.network.as_str(),
        bridge.address.as_str(),
        bridge.mac.as_str(),
        bridge.nat.as_str(),
        &bridge.forwards,
    ));
    call(proxy.inner(), "CreateBridged", &body, work).await
}

/// `Vms.Install` from the installer in `iso` (opened by this app, as the user).
pub async fn install_vm(
    proxy: &VmsProxy<'_>,
    name: &str,
    iso: &File,
    work: Duration,
) -> Result<VmInfo, Error> {
    let body = zbus::DynamicTuple((name, zbus::Fd::from(iso)));
    call(proxy.inner(), "Install", &body, work).await
}

/// `Vms.Delete`; returns the policy generation that removed it.
pub async fn delete_vm(proxy: &VmsProxy<'_>, name: &str, work: Duration) -> Result<u64, Error> {
    call(proxy.inner(), "Delete", &zbus::DynamicTuple((name,)), work).await
}

/// `Vms.Promote`; returns the new base version.
pub async fn promote_vm(proxy: &VmsProxy<'_>, name: &str, work: Duration) -> Result<u32, Error> {
    call(proxy.inner(), "Promote", &zbus::DynamicTuple((name,)), work).await
}

/// `Vms.Discard`.
pub async fn discard_vm(proxy: &VmsProxy<'_>, name: &str, work: Duration) -> Result<(), Error> {
    call(proxy.inner(), "Discard", &zbus::DynamicTuple((name,)), work).await
}

/// `Vms.Restore` of a kept version.
pub async fn restore_vm(
    proxy: &VmsProxy<'_>,
    name: &str,
    version: u32,
    work: Duration,
) -> Result<(), Error> {
    let body = zbus::DynamicTuple((name, version));
    call(proxy.inner(), "Restore", &body, work).await
}

/// `Vms.UsbAttach`; returns the id to detach it by.
pub async fn attach_usb(
    proxy: &VmsProxy<'_>,
    name: &str,
    device: &str,
    work: Duration,
) -> Result<String, Error> {
    let body = zbus::DynamicTuple((name, device));
    call(proxy.inner(), "UsbAttach", &body, work).await
}

/// `Vms.UsbDetach`.
pub async fn detach_usb(
    proxy: &VmsProxy<'_>,
    name: &str,
    id: &str,
    work: Duration,
) -> Result<(), Error> {
    let body = zbus::DynamicTuple((name, id));
    call(proxy.inner(), "UsbDetach", &body, work).await
}

/// `Consoles.Open`.
pub async fn open_console(
    proxy: &ConsolesProxy<'_>,
    name: &str,
    work: Duration,
) -> Result<ConsoleTicket, Error> {
    call(proxy.inner(), "Open", &zbus::DynamicTuple((name,)), work).await
}

/// `Policy.Apply` of the local policy `document` on top of generation `base`, kept only if
/// `Confirm` comes within `confirm_seconds`.
pub async fn apply_policy(
    proxy: &PolicyProxy<'_>,
    document: &[u8],
    base: u64,
    confirm_seconds: u32,
    work: Duration,
) -> Result<Applied, Error> {
    let body = zbus::DynamicTuple((document, base, confirm_seconds, Client::App));
    call(proxy.inner(), "Apply", &body, work).await
}

/// `Policy.Confirm` of a pending generation.
pub async fn confirm_policy(
    proxy: &PolicyProxy<'_>,
    generation: u64,
    work: Duration,
) -> Result<(), Error> {
    call(
        proxy.inner(),
        "Confirm",
        &zbus::DynamicTuple((generation,)),
        work,
    )
    .await
}

/// `Policy.Rollback` to `generation`'s policy, as a new generation.
pub async fn rollback_policy(
    proxy: &PolicyProxy<'_>,
    generation: u64,
    work: Duration,
) -> Result<Applied, Error> {
    let body = zbus::DynamicTuple((generation, Client::App));
    call(proxy.inner(), "Rollback", &body, work).await
}

/// What polkit says about this app and an action, asked without a password dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Allowed as things stand (an administrator, or a password given a moment ago).
    Allowed,
    /// Allowed once someone types an administrator's password.
    WithPassword,
    /// Refused whatever anyone types: the controls for it would only fail.
    Refused,
    /// polkit could not be asked; the helper decides when the button is pressed.
    Unknown,
}

impl Permission {
    /// Whether a control for the action belongs on screen.
    pub fn offered(self) -> bool {
        self != Permission::Refused
    }
}

/// Asks polkit whether this process may do `action`, never interactively (a page asks this
/// before it shows its edit controls). The helper asks polkit the same question about the same
/// process when a call comes, so the answers agree.
pub async fn permission(connection: &zbus::Connection, action: Action) -> Permission {
    match check(connection, action).await {
        Ok(permission) => permission,
        Err(why) => {
            eprintln!("palisade: cannot ask polkit about {action}: {why}");
            Permission::Unknown
        }
    }
}

async fn check(connection: &zbus::Connection, action: Action) -> Result<Permission, String> {
    let subject =
        Subject::new_for_pid(std::process::id(), None, None).map_err(|e| e.to_string())?;
    let authority = AuthorityProxy::builder(connection)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let result = authority
        .check_authorization(
            &subject,
            action.id(),
            &HashMap::new(),
            CheckAuthorizationFlags::empty(),
            "",
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(if result.is_authorized {
        Permission::Allowed
    } else if result.is_challenge {
        Permission::WithPassword
    } else {
        Permission::Refused
    })
}
