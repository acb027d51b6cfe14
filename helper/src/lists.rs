//! The blocklist service behind `io.palisade.Helper1.Blocklists`: imports streamed from a
//! descriptor the caller opened, listing, removal — and, when the live policy names a list that
//! changed, loading the new version into the kernel before the call returns.
//!
//! Invariants: an import is parsed whole (streamed, bounded memory) before anything is stored, so
//! a refused list changes nothing; the store swaps a list's record atomically; the firewall swaps
//! the kernel's set only after the new one is complete (see `firewall::data`). A list the live
//! policy names cannot be removed.

use crate::blocklist::parse::{parse, Format, ParseOptions};
use crate::blocklist::store::{ListMeta, ListSource, ListStore, StoreError};
use crate::clock::unix_now;
use crate::firewall::Firewall;
use palisade_dbus::policy::ShortName;
use palisade_dbus::types::{BlocklistInfo, ListProblem, ListSourceKind};
use palisade_dbus::Error;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

/// What an import is asked to do.
#[derive(Debug)]
pub struct ImportRequest {
    /// The list's name.
    pub name: ShortName,
    /// The caller's open file.
    pub file: OwnedFd,
    /// How to read it.
    pub options: ParseOptions,
}

/// The blocklist service.
pub struct Lists {
    store: Arc<ListStore>,
    firewall: Arc<Firewall>,
}

impl Lists {
    /// The service over the list store and the firewall that enforces the lists.
    pub fn new(store: Arc<ListStore>, firewall: Arc<Firewall>) -> Self {
        Self { store, firewall }
    }

    /// Reads, checks and stores a list; if the live policy names it, the kernel enforces the new
    /// version when this returns.
    pub async fn import(&self, request: ImportRequest) -> Result<BlocklistInfo, Error> {
        let file = File::from(request.file);
        let meta = file
            .metadata()
            .map_err(|e| Error::InvalidArgument(format!("cannot inspect the file: {e}")))?;
        // A regular file ends; a pipe or a device could keep a helper thread reading forever.
        if !meta.file_type().is_file() || meta.file_type().is_fifo() {
            return Err(Error::InvalidArgument(
                "a blocklist is imported from a regular file, not a folder, pipe or device".into(),
            ));
        }
        let (name, options) = (request.name, request.options);
        let store = Arc::clone(&self.store);
        let label = format!("file ({} bytes)", meta.len());
        let stored = tokio::task::spawn_blocking(move || {
            let parsed = parse(std::io::BufReader::new(file), &options)?;
            let meta = ListMeta::new(
                name,
                ListSource::File { label },
                &options,
                &parsed,
                unix_now(),
            );
            store
                .save(meta, &parsed.networks, &parsed.domains)
                .map_err(store_error)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        crate::memory::release_soon();
        let in_use = self.in_use(&stored.name);
        if in_use {
            self.firewall.reinstall().await?;
        }
        Ok(info(&stored, in_use))
    }

    /// Every imported list.
    pub fn list(&self) -> Result<Vec<BlocklistInfo>, Error> {
        let metas = self.store.list().map_err(store_error)?;
        Ok(metas
            .iter()
            .map(|m| info(m, self.in_use(&m.name)))
            .collect())
    }

    /// One imported list.
    pub fn show(&self, name: &ShortName) -> Result<BlocklistInfo, Error> {
        let meta = self.store.meta(name).map_err(store_error)?;
        Ok(info(&meta, self.in_use(name)))
    }

    /// Removes a list the live policy does not name.
    pub fn remove(&self, name: &ShortName) -> Result<(), Error> {
        if self.in_use(name) {
            return Err(Error::Conflict(format!(
                "the live policy names the list {name}; remove it from the policy first"
            )));
        }
        match self.store.remove(name).map_err(store_error)? {
            true => Ok(()),
            false => Err(Error::NotFound(format!("there is no imported list {name}"))),
        }
    }

    fn in_use(&self, name: &ShortName) -> bool {
        self.firewall
            .live_policy()
            .1
            .blocklists
            .iter()
            .any(|b| b.imported && &b.name == name)
    }
}

/// Parses the caller's format word.
pub fn format(word: &str) -> Result<Format, Error> {
    Format::parse(word).map_err(Error::from)
}

fn info(m: &ListMeta, in_use: bool) -> BlocklistInfo {
    let (source_kind, source) = match &m.source {
        ListSource::File { label } => (ListSourceKind::File, label.clone()),
        ListSource::Url { url, .. } => (ListSourceKind::Url, url.clone()),
    };
    BlocklistInfo {
        name: m.name.to_string(),
        source_kind,
        source,
        format: m.format.to_string(),
        strict: m.strict,
        ranges: m.networks,
        addresses_v4: m.addresses_v4,
        addresses_v6: m.addresses_v6.to_string(),
        domains: m.domains,
        lines: m.lines,
        imported_at: m.imported_at,
        refreshed_at: m.refreshed_at,
        problems: m
            .problems
            .iter()
            .map(|p| ListProblem {
                line: p.line,
                reason: p.reason.clone(),
                text: p.text.clone(),
            })
            .collect(),
        problems_not_listed: m.problems_not_listed,
        content_hash: m.content_hash.clone(),
        in_use,
    }
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NotFound(name) => Error::NotFound(format!("there is no imported list {name}")),
        other => Error::Internal(other.to_string()),
    }
}
