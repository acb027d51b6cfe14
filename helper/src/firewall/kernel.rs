//! The thin layer that talks to the kernel: a ruleset goes in one transaction, either changed
//! in place over netlink when only rules, named counters and marks differ from what was
//! installed and the record of the table can be trusted (`patch`; measured with 10,000 rules,
//! one changed: the kernel's part 8 ms, where `nft -f` of the ruleset takes 0.65 s), or whole
//! through `nft -f -` (the structure) otherwise; and questions answered over netlink without
//! reading any set.
//!
//! The `nft` transaction arrives on stdin, never on a command line, and is text rendered from the
//! compiler's validated types (`render::render_batch`). When the kernel refuses it, the whole
//! payload is kept on disk (root only) and logged by path, so the failure can be reproduced
//! exactly with `nft -f`.

use super::patch::{plan, ChainChange, KernelRecord, Patch};
use super::render::render_batch;
use super::ruleset::{Ruleset, LIVE_MARKS, TABLE};
use palisade_dbus::Error;
use palisade_nfnetlink::{
    Batch, ChainRef, Element, Key, NftSocket, ObjectKind, ObjectRef, Placement, SetRef, TableFamily,
};
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
    /// Every named counter of the table (listed only for a replacement of the structure,
    /// `data::with_objects`; empty otherwise).
    pub counters: Vec<String>,
    /// Every named limit of the table (likewise).
    pub limits: Vec<String>,
    /// Every mark map of the table with its elements (likewise): a map the new structure has
    /// too is changed element by element, so the rules it keeps keep their counts.
    pub mark_maps: Vec<(String, Vec<palisade_nfnetlink::ListedEntry>)>,
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

/// Installs `ruleset` by changing the table in place (`patch`), if the record of what it holds
/// can be trusted and the change allows it; `false` when the caller has to load it whole. Every
/// failure here is only that: the record is dropped and nothing half-done stays (one
/// transaction).
pub fn apply_in_place(record: &std::sync::Mutex<Option<KernelRecord>>, ruleset: &Ruleset) -> bool {
    let Ok(mut slot) = record.lock() else {
        return false;
    };
    let Some(mut known) = slot.take() else {
        return false;
    };
    let attempt = (|| -> Result<Option<KernelRecord>, String> {
        let mut socket = NftSocket::open().map_err(|e| e.to_string())?;
        if !socket.only_own_commits().map_err(|e| e.to_string())? {
            return Err("the ruleset was changed by someone else since the last install".into());
        }
        if !known.has_handles() {
            let listed: Vec<(String, u64)> = socket
                .list_rules(TableFamily::Inet, TABLE)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|r| (r.chain, r.handle))
                .collect();
            if !known.learn_handles(&listed) {
                return Err("the table's rules are not the ones installed".into());
            }
        }
        let Some(patch) = plan(&known, ruleset) else {
            return Ok(None);
        };
        if patch.is_empty() {
            return Ok(Some(known.clone()));
        }
        let added = send_patch(&mut socket, &patch).map_err(|e| e.to_string())?;
        tracing::debug!(
            "changed the table in place: {} chains, {} rules added",
            patch.chains.len(),
            added.len()
        );
        Ok(known.patched(&patch, &added))
    })();
    match attempt {
        Ok(Some(updated)) => {
            *slot = Some(updated);
            true
        }
        Ok(None) => false,
        Err(why) => {
            tracing::info!("loading the whole ruleset instead of changing it in place: {why}");
            false
        }
    }
}

/// The ruleset's generation now, before a load through `nft -f` ([`remember`] after it).
pub fn generation_before_load() -> Option<u32> {
    NftSocket::open().ok()?.generation().ok()
}

/// Records `ruleset` as what the table holds, just loaded whole by one `nft -f` run that began
/// at generation `before`: only if that run was the one commit since (anyone else's commit in
/// between could have changed the table), so that from here on the helper's own commits keep
/// the record true (`palisade_nfnetlink::commits`). Otherwise the next install loads the
/// table whole again.
pub fn remember(
    record: &std::sync::Mutex<Option<KernelRecord>>,
    ruleset: &Ruleset,
    before: Option<u32>,
) {
    let marked = before
        .ok_or_else(|| "the generation before the load is unknown".to_owned())
        .and_then(|before| {
            NftSocket::open()
                .map_err(|e| e.to_string())
                .and_then(|mut s| s.mark_known_after_one(before).map_err(|e| e.to_string()))
        });
    if let Ok(mut slot) = record.lock() {
        *slot = match marked {
            Ok(true) => Some(KernelRecord::of(ruleset)),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!("the next install loads the whole ruleset: {e}");
                None
            }
        };
    }
}

/// Sends `patch` as one transaction; returns the handles of the added rules in the patch's
/// order. New counters come first (the rules name them), then the rules, the marks, the mark
/// maps' elements, and last the counters no rule names any more; the packet path sees all of it
/// at once.
fn send_patch(
    socket: &mut NftSocket,
    patch: &Patch,
) -> Result<Vec<u64>, palisade_nfnetlink::NetlinkError> {
    let mut batch = Batch::new();
    for (name, comment) in &patch.new_counters {
        let counter = ObjectRef::new(TableFamily::Inet, TABLE, ObjectKind::Counter, name)?;
        batch.new_counter(&counter, Some(comment))?;
    }
    // The kernel tells the added rules' handles in the order they are sent; rules placed
    // after a kept rule are sent in reverse (each goes right after it), so their handles are
    // turned back after.
    let mut sent: Vec<(usize, bool)> = Vec::new();
    for cp in &patch.chains {
        let chain = ChainRef::new(TableFamily::Inet, TABLE, &cp.chain)?;
        match &cp.change {
            ChainChange::Replace(rules) => {
                batch.flush_chain(&chain);
                for rule in rules {
                    batch.add_rule(&chain, Placement::Append, rule)?;
                }
                sent.push((rules.len(), false));
            }
            ChainChange::Edit(runs) => {
                for run in runs {
                    for handle in &run.delete {
                        batch.delete_rule(&chain, *handle);
                    }
                    let after = matches!(run.placement, Placement::After(_));
                    if after {
                        for rule in run.add.iter().rev() {
                            batch.add_rule(&chain, run.placement, rule)?;
                        }
                    } else {
                        for rule in &run.add {
                            batch.add_rule(&chain, run.placement, rule)?;
                        }
                    }
                    sent.push((run.add.len(), after));
                }
            }
        }
    }
    let marks = SetRef::new(TableFamily::Inet, TABLE, LIVE_MARKS)?;
    batch.add_elements(
        &marks,
        patch
            .marks_added
            .iter()
            .map(|m| Element::single(Key::Mark(*m))),
    );
    batch.delete_elements(
        &marks,
        patch
            .marks_removed
            .iter()
            .map(|m| Element::single(Key::Mark(*m))),
    );
    for map in &patch.maps {
        let set = SetRef::new(TableFamily::Inet, TABLE, &map.map)?;
        batch.delete_mark_entries(&set, map.removed.iter().copied());
        batch.add_mark_entries(&set, &map.added)?;
    }
    for name in &patch.gone_counters {
        batch.delete_object(&ObjectRef::new(
            TableFamily::Inet,
            TABLE,
            ObjectKind::Counter,
            name,
        )?);
    }
    let told = socket.send_rules(&mut batch)?;
    let mut handles = Vec::with_capacity(told.len());
    let mut told = told.into_iter();
    for (count, after) in sent {
        let mut some: Vec<u64> = told.by_ref().take(count).collect();
        if after {
            some.reverse();
        }
        handles.extend(some);
    }
    Ok(handles)
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

/// Every counter of our table with what it counted, by name: the named counters (one netlink
/// dump of the table's objects, which reads no rule and no set element), and the counters of
/// the mark maps' and rule sets' elements, summed by the counter name each element carries as
/// its comment (a dump of each one's elements; no other set's are read).
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
        let mut counted: std::collections::HashMap<String, super::netlink::Counted> = objects
            .into_iter()
            .filter_map(|o| Some((o.name, o.counted?)))
            .collect();
        for (_, entries) in mark_map_entries(&mut socket, true).map_err(|e| e.to_string())? {
            for entry in entries {
                if let (Some(name), Some(c)) = (entry.comment, entry.counted) {
                    let sum = counted.entry(name).or_default();
                    sum.packets += c.packets;
                    sum.bytes += c.bytes;
                }
            }
        }
        Ok(counted)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e: String| Error::Internal(format!("cannot read the firewall's counters: {e}")))
}

/// nft's type number of `ipv4_addr . inet_proto . inet_service` and of its IPv6 twin: a
/// concatenation packs its types' numbers six bits each (`ipv4_addr` 7, `ipv6_addr` 8,
/// `inet_proto` 12, `inet_service` 13).
const ENDPOINT_TYPES: [u32; 2] = [(7 << 12) | (12 << 6) | 13, (8 << 12) | (12 << 6) | 13];

/// Every interval map and rule set of our table with its elements.
pub(super) fn interval_set_entries(
    socket: &mut NftSocket,
) -> Result<Vec<(String, Vec<palisade_nfnetlink::ListedEntry>)>, palisade_nfnetlink::NetlinkError> {
    endpoint_sets(socket, |set| set.interval())
}

/// Every mark map and rule set of our table with its elements (only the hash maps unless
/// `interval_too`): a dump of the table's sets (no elements), then of each one's elements.
/// They are the sets keyed by `address . protocol . port`; no other set's elements are read.
pub(super) fn mark_map_entries(
    socket: &mut NftSocket,
    interval_too: bool,
) -> Result<Vec<(String, Vec<palisade_nfnetlink::ListedEntry>)>, palisade_nfnetlink::NetlinkError> {
    endpoint_sets(socket, |set| interval_too || !set.interval())
}

/// The sets of our table keyed by `address . protocol . port` that `which` picks, with their
/// elements.
fn endpoint_sets(
    socket: &mut NftSocket,
    which: impl Fn(&palisade_nfnetlink::SetInfo) -> bool,
) -> Result<Vec<(String, Vec<palisade_nfnetlink::ListedEntry>)>, palisade_nfnetlink::NetlinkError> {
    let mut maps = Vec::new();
    for set in socket.list_sets(TableFamily::Inet, TABLE)? {
        if ENDPOINT_TYPES.contains(&set.key_type) && matches!(set.key_len, 12 | 24) && which(&set) {
            let entries =
                socket.list_mark_entries(&SetRef::new(TableFamily::Inet, TABLE, &set.name)?)?;
            maps.push((set.name, entries));
        }
    }
    Ok(maps)
}
