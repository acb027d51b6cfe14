//! The blocklist service behind `io.palisade.Helper1.Blocklists`: imports streamed from a
//! descriptor the caller opened or downloaded from an address, refreshes of downloaded lists (on
//! request and on their schedule, [`Lists::run_refresh`]), listing, removal — and, when the live
//! policy names a list that changed, loading the new version into the kernel before the call
//! returns.
//!
//! Invariants: an import is parsed whole (streamed, bounded memory) before anything is stored, so
//! a refused list or a failed download changes nothing; the store swaps a list's record
//! atomically; the firewall swaps the kernel's set only after the new one is complete (see
//! `firewall::data`). A refresh answered `304 Not Modified` rewrites only the record's
//! `refreshed_at`; a download whose content hash is unchanged touches nothing in the kernel. List
//! changes are serialized by one lock, so the scheduler and a caller never save the same list at
//! once. A list the live policy names cannot be removed.

use crate::blocklist::fetch::{self, Fetched, Validators};
use crate::blocklist::parse::{parse_file, Format, ParseOptions};
use crate::blocklist::store::{Current, ListMeta, ListSource, ListStore, StoreError};
use crate::clock::unix_now;
use crate::firewall::Firewall;
use palisade_dbus::policy::ShortName;
use palisade_dbus::types::{BlocklistInfo, ListProblem, ListSourceKind};
use palisade_dbus::Error;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

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

/// What an import from an address is asked to do.
#[derive(Debug)]
pub struct UrlImportRequest {
    /// The list's name.
    pub name: ShortName,
    /// The address, checked by [`fetch::check_url`].
    pub url: String,
    /// Seconds between scheduled refreshes; 0 never.
    pub refresh_seconds: u64,
    /// How to read it.
    pub options: ParseOptions,
}

/// Shortest schedule accepted, seconds.
pub const MIN_REFRESH: u64 = 300;
/// Longest schedule accepted, seconds (30 days).
pub const MAX_REFRESH: u64 = 30 * 86_400;
/// How often the scheduler looks for lists due.
const SCHEDULER_TICK: Duration = Duration::from_secs(60);
/// A list whose refresh failed is tried again after this long at the earliest (or its own
/// interval, if shorter), so a broken server is not asked every minute.
const RETRY_AFTER_FAILURE: u64 = 15 * 60;

/// Checks a refresh interval the caller sent: 0 (never) or within
/// [[`MIN_REFRESH`], [`MAX_REFRESH`]].
pub fn refresh_interval(seconds: u32) -> Result<u64, Error> {
    let seconds = u64::from(seconds);
    if seconds == 0 || (MIN_REFRESH..=MAX_REFRESH).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(Error::InvalidArgument(format!(
            "a list is refreshed every {MIN_REFRESH} seconds (5 minutes) at most often and every \
             {MAX_REFRESH} seconds (30 days) at least often, not every {seconds}; 0 means never"
        )))
    }
}

/// Checks an address the caller sent (see [`fetch::check_url`]).
pub fn url(url: &str) -> Result<String, Error> {
    fetch::check_url(url).map_err(Error::InvalidArgument)?;
    Ok(url.to_owned())
}

/// The blocklist service.
pub struct Lists {
    store: Arc<ListStore>,
    firewall: Arc<Firewall>,
    /// Held while a list is read and saved: one change at a time.
    changing: tokio::sync::Mutex<()>,
}

impl Lists {
    /// The service over the list store and the firewall that enforces the lists.
    pub fn new(store: Arc<ListStore>, firewall: Arc<Firewall>) -> Self {
        Self {
            store,
            firewall,
            changing: tokio::sync::Mutex::new(()),
        }
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
        let _changing = self.changing.lock().await;
        let label = format!("file ({} bytes)", meta.len());
        let current = self.read_current(&name);
        let (meta, parsed) = tokio::task::spawn_blocking(move || {
            let parsed = parse_file(&file, &options)?;
            let meta = ListMeta::new(
                name,
                ListSource::File { label },
                &options,
                &parsed,
                unix_now(),
            );
            Ok::<_, Error>((meta, parsed))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        // No earlier version counts as the same: a file import always enforces what it stored.
        self.save_and_enforce(meta, parsed, None, current).await
    }

    /// Downloads, checks and stores a list (replacing any list of that name); it is read again
    /// every `refresh_seconds`. If the live policy names it and its contents changed, the kernel
    /// enforces the new version when this returns.
    pub async fn import_url(&self, request: UrlImportRequest) -> Result<BlocklistInfo, Error> {
        let _changing = self.changing.lock().await;
        let previous = self.store.meta(&request.name).ok();
        let current = self.read_current(&request.name);
        let (url, options) = (request.url.clone(), request.options);
        let fetched = tokio::task::spawn_blocking(move || {
            fetch::fetch(&url, &Validators::default(), &options)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let Fetched::Fresh { parsed, validators } = fetched else {
            // Unconditional requests are not answered 304 by a correct server.
            return Err(Error::InvalidArgument(format!(
                "the server answered 304 Not Modified to a plain request for {}; nothing was \
             imported",
                request.url
            )));
        };
        let meta = ListMeta::new(
            request.name,
            ListSource::Url {
                url: request.url,
                refresh_seconds: request.refresh_seconds,
                etag: validators.etag,
                last_modified: validators.last_modified,
            },
            &request.options,
            &parsed,
            unix_now(),
        );
        let before = previous.map(|m| m.content_hash);
        self.save_and_enforce(meta, parsed, before, current).await
    }

    /// Reads a downloaded list's address again now, conditionally: a `304 Not Modified` updates
    /// only when it was refreshed; new contents are stored and, if the live policy names the
    /// list, enforced when this returns. A list imported from a file cannot be refreshed.
    pub async fn refresh(&self, name: &ShortName) -> Result<BlocklistInfo, Error> {
        let _changing = self.changing.lock().await;
        let mut meta = self.store.meta(name).map_err(store_error)?;
        let ListSource::Url {
            url,
            refresh_seconds,
            etag,
            last_modified,
        } = meta.source.clone()
        else {
            return Err(Error::InvalidArgument(format!(
                "the list {name} was imported from a file, which the helper cannot read again; \
             import it again to update it"
            )));
        };
        let validators = Validators {
            etag,
            last_modified,
        };
        let options = meta.parse_options();
        let current = self.read_current(name);
        let fetched = {
            let url = url.clone();
            tokio::task::spawn_blocking(move || fetch::fetch(&url, &validators, &options))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        };
        match fetched {
            Fetched::NotModified => {
                meta.refreshed_at = unix_now();
                self.store.update_meta(&meta).map_err(store_error)?;
                tracing::info!("blocklist {name}: not modified at its source");
                Ok(info(&meta, self.in_use(name)))
            }
            Fetched::Fresh { parsed, validators } => {
                let mut fresh = ListMeta::new(
                    name.clone(),
                    ListSource::Url {
                        url,
                        refresh_seconds,
                        etag: validators.etag,
                        last_modified: validators.last_modified,
                    },
                    &meta.parse_options(),
                    &parsed,
                    unix_now(),
                );
                fresh.imported_at = meta.imported_at;
                self.save_and_enforce(fresh, parsed, Some(meta.content_hash), current)
                    .await
            }
        }
    }

    /// Refreshes every downloaded list when its interval has passed, checking every minute.
    /// Failures are logged and tried again later; never fatal.
    pub async fn run_refresh(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SCHEDULER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_at: HashMap<ShortName, u64> = HashMap::new();
        loop {
            tick.tick().await;
            let metas = match self.store.list() {
                Ok(metas) => metas,
                Err(e) => {
                    tracing::warn!("cannot look for blocklists to refresh: {e}");
                    continue;
                }
            };
            for meta in metas {
                let ListSource::Url {
                    refresh_seconds, ..
                } = meta.source
                else {
                    continue;
                };
                let now = unix_now();
                if refresh_seconds == 0 || meta.refreshed_at.saturating_add(refresh_seconds) > now {
                    continue;
                }
                let retry = RETRY_AFTER_FAILURE.min(refresh_seconds);
                if failed_at
                    .get(&meta.name)
                    .is_some_and(|&t| t.saturating_add(retry) > now)
                {
                    continue;
                }
                match self.refresh(&meta.name).await {
                    Ok(_) => {
                        failed_at.remove(&meta.name);
                    }
                    Err(e) => {
                        tracing::warn!("blocklist {}: scheduled refresh failed: {e}", meta.name);
                        failed_at.insert(meta.name.clone(), now);
                    }
                }
            }
        }
    }

    /// Saves a freshly read list; reloads the kernel only if the live policy names it and its
    /// contents differ from `before`'s hash.
    async fn save_and_enforce(
        &self,
        meta: ListMeta,
        parsed: crate::blocklist::parse::ParsedList,
        before: Option<String>,
        current: JoinHandle<Option<Current>>,
    ) -> Result<BlocklistInfo, Error> {
        let current = current.await.map_err(|e| Error::Internal(e.to_string()))?;
        let store = Arc::clone(&self.store);
        let stored = tokio::task::spawn_blocking(move || {
            store
                .save_over(meta, &parsed.networks, &parsed.domains, current)
                .map_err(store_error)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        crate::memory::release_soon();
        let changed = before.as_deref() != Some(stored.content_hash.as_str());
        let in_use = self.in_use(&stored.name);
        if changed && in_use {
            self.firewall.reinstall().await?;
        }
        tracing::info!(
            "blocklist {}: stored {} ({})",
            stored.name,
            stored.content_hash,
            if changed { "changed" } else { "unchanged" }
        );
        Ok(info(&stored, in_use))
    }

    /// Starts reading the stored version of list `name`, which a save of the next one compares
    /// with, while that one is read from its source. Called with `changing` held: nothing else
    /// saves the list until the save that uses it.
    fn read_current(&self, name: &ShortName) -> JoinHandle<Option<Current>> {
        let (store, name) = (Arc::clone(&self.store), name.clone());
        tokio::task::spawn_blocking(move || store.current(&name))
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
    let (source_kind, source, refresh_seconds) = match &m.source {
        ListSource::File { label } => (ListSourceKind::File, label.clone(), 0),
        ListSource::Url {
            url,
            refresh_seconds,
            ..
        } => (ListSourceKind::Url, url.clone(), *refresh_seconds),
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
        refresh_seconds,
    }
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NotFound(name) => Error::NotFound(format!("there is no imported list {name}")),
        other => Error::Internal(other.to_string()),
    }
}
