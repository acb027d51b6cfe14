//! The thin layer that talks to the kernel: one `nft -f -` per ruleset (the structure), and
//! questions answered over netlink without reading any set.
//!
//! The transaction arrives on stdin, never on a command line, and is text rendered from the
//! compiler's validated types (`render::render_batch`). When the kernel refuses it, the whole
//! payload is kept on disk (root only) and logged by path, so the failure can be reproduced
//! exactly with `nft -f`.

use super::render::render_batch;
use super::ruleset::Ruleset;
use palisade_dbus::Error;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Longest an nft run may take before it is treated as failed (a 1M-entry set takes ~20 s).
const NFT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the kernel's table holds now, as far as replacing its structure needs to know: the names
/// of its chains and of its named sets (from netlink dumps, which read no set elements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Every chain of the table.
    pub chains: Vec<String>,
    /// Every named set of the table (anonymous sets go with their rules).
    pub sets: Vec<String>,
    /// Every named counter of the table.
    pub counters: Vec<String>,
    /// Every named limit of the table.
    pub limits: Vec<String>,
    /// Whether our `bridge` table (the lab ports' guards) exists.
    pub bridge_table: bool,
}

/// Replaces the structure of `ruleset`'s table, `existing` being what it holds now, in one
/// transaction: it lands whole or not at all (see `render::render_batch` for what it touches).
pub async fn apply_structure(
    ruleset: &Ruleset,
    existing: &Existing,
    refused_file: &Path,
) -> Result<(), Error> {
    let payload = render_batch(ruleset, existing).map_err(|e| {
        Error::ApplyFailed(format!(
            "cannot replace the ruleset, nothing was changed: {e}"
        ))
    })?;
    match run_nft(&["-f", "-"], Some(payload.as_bytes())).await {
        Ok(_) => Ok(()),
        Err(reason) => {
            let kept = crate::store::write_atomic(refused_file, payload.as_bytes(), 0o600);
            tracing::error!(
                "the kernel refused the ruleset ({reason}); payload kept in {} ({:?})",
                refused_file.display(),
                kept.err()
            );
            Err(Error::ApplyFailed(format!(
                "the kernel refused the new ruleset, nothing was changed: {reason}"
            )))
        }
    }
}

/// Whether our table exists, asked over netlink: any `nft list`, even `list tables`, first reads
/// every element of every set (measured: 130 s beside a million-entry set).
pub async fn table_present() -> bool {
    let asked = tokio::task::spawn_blocking(|| {
        super::netlink::NftSocket::open()
            .map_err(|e| e.to_string())?
            .table_exists(super::netlink::TableFamily::Inet, super::ruleset::TABLE)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|answer| answer);
    asked.unwrap_or_else(|e| {
        tracing::warn!("cannot ask the kernel for our table: {e}");
        false
    })
}

async fn run_nft(args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes)
            .await
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = tokio::time::timeout(NFT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("nft did not finish within {} s", NFT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("nft failed: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().take(5).collect::<Vec<_>>().join(" / "))
    }
}

/// Every named counter of our table with what it counted: one netlink dump of the table's
/// objects, which reads no rule and no set element.
pub async fn counters() -> Result<std::collections::HashMap<String, super::netlink::Counted>, Error>
{
    tokio::task::spawn_blocking(|| {
        let mut socket = super::netlink::NftSocket::open().map_err(|e| e.to_string())?;
        let mut objects = socket
            .list_objects(super::netlink::TableFamily::Inet, super::ruleset::TABLE)
            .map_err(|e| e.to_string())?;
        // The lab ports' guards count in the bridge table, which exists only with bridged VMs.
        if let Ok(bridge) =
            socket.list_objects(super::netlink::TableFamily::Bridge, super::ruleset::TABLE)
        {
            objects.extend(bridge);
        }
        Ok(objects
            .into_iter()
            .filter_map(|o| Some((o.name, o.counted?)))
            .collect())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e: String| Error::Internal(format!("cannot read the firewall's counters: {e}")))
}
