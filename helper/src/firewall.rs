//! The firewall: policy in → validate → compile → apply → observe.
//!
//! `compile` and `generations` (the live state machine) are pure; `kernel` sends one batch; this
//! module performs the effects in order around them. Applies are serialized behind one lock, and
//! the in-memory picture of what is live is changed only after the kernel accepted the batch and
//! the generation is on disk; a step after that commit that fails is reported as a warning with
//! the success, never as a failure. Readers never take the lock: they read the `Snapshot`
//! published after every change.
//!
//! Sources: the policy is merged from the drop-ins and the local policy (`dropins`,
//! `palisade_dbus::policy::merge`). `apply` replaces the local policy and keeps the live
//! drop-ins; `reload` reads the drop-ins from disk and keeps the live local policy; `rollback`
//! brings back every file of the generation it returns to. Each generation records its files,
//! who made it and the hash of its merged document.
//!
//! Generations: every apply gets the next number and is kept forever. A generation applied with a
//! confirmation window is *pending*: unless `confirm` arrives in time, the last *confirmed*
//! generation is installed again and the pending one is marked reverted. Boot and restarts load
//! the last confirmed generation, never a pending one.

pub mod compile;
pub mod conntrack;
pub mod data;
pub mod encode;
pub mod facts;
pub mod generations;
pub mod guest;
pub mod kernel;
pub mod patch;
pub mod range_sets;
pub mod render;
pub mod ruleset;

use crate::blocklist::store::ListStore;
use crate::clock::unix_now;
use crate::dropins::{DropInName, PolicyFiles};
use crate::store::{GenerationRecord, LiveState, Outcome, Store};
use compile::compile_ruleset;
use facts::{ConsolePorts, FollowNames};
use palisade_dbus::policy::merge::{merge, Merged};
use palisade_dbus::policy::{Policy, Vm};
use palisade_dbus::types::{
    Applied, CandidateReport, Drift, Finding, GenerationInfo, GenerationSource, PolicySource,
    PolicySources, Preview, Reloaded, Severity, SourceKind, Status,
};
use palisade_dbus::Error;
/// The nfnetlink encoder, under the name the data path and `kernel` use.
use palisade_nfnetlink as netlink;
use ruleset::RuleTag;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Mutex, Notify};
use tokio::task::JoinHandle;

/// Longest confirmation window: a day. Longer is a typo, not a safety net.
pub const MAX_CONFIRM_SECONDS: u32 = 86_400;
/// Most problems listed in one error sentence; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 50;
/// How long a diff between two generations may look for the smallest difference before it
/// settles for a larger one.
const DIFF_DEADLINE: Duration = Duration::from_secs(2);

/// What is in the kernel now.
struct Live {
    generation: u64,
    /// The merged document.
    document: Arc<str>,
    policy: Arc<Policy>,
    installed: Installed,
    about: About,
}

/// Where the live generation comes from.
#[derive(Debug, Clone)]
pub struct About {
    /// The files it was merged from, the local policy last.
    pub sources: Arc<[PolicySource]>,
    /// Who made it.
    pub source: GenerationSource,
    /// SHA-256 of its merged document, hex.
    pub policy_hash: Arc<str>,
    /// Unix seconds it was applied.
    pub applied_at: u64,
}

/// What readers see of the live state: published after every change, read without a lock, so
/// status, the policy and the VM and console lists never wait for an apply in progress. The big
/// parts are shared, never copied per read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The live generation.
    pub generation: u64,
    /// Its document.
    pub document: Arc<str>,
    /// Its validated policy.
    pub policy: Arc<Policy>,
    /// Unix time until which it waits for confirmation; 0 when confirmed.
    pub pending_until: u64,
    /// The installed ruleset as nft text, for previews' diffs.
    pub ruleset: Arc<str>,
    /// The installed ruleset's named counters and the rule each counts (the drop log's key).
    pub counters: Arc<[(String, RuleTag)]>,
    /// Where the live generation comes from.
    pub about: About,
    /// Something the admin should know (corrupt policy file, ...), or empty.
    pub problem: String,
}

/// What is kept of an installed ruleset: the text (for previews' diffs) and the connection
/// marks (to know which connections a later ruleset cuts). The full ruleset is not kept: at
/// 10,000 rules it would be most of the idle helper's memory.
#[derive(Default)]
struct Installed {
    marks: BTreeSet<u32>,
    text: Arc<str>,
    counters: Arc<[(String, RuleTag)]>,
    rules: usize,
}

struct State {
    live: Live,
    pointers: LiveState,
    /// Something the admin should know (corrupt policy file, ...).
    problem: String,
    revert: Option<JoinHandle<()>>,
}

/// The firewall service.
pub struct Firewall {
    store: Store,
    files: PolicyFiles,
    engine: Engine,
    state: Mutex<State>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    changed: watch::Sender<u64>,
    rearm_expiry: Notify,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall").finish_non_exhaustive()
    }
}

/// Where a new generation came from.
pub struct Origin {
    /// Uid of whoever asked.
    pub author_uid: u32,
    /// Why: `apply`, `rollback to 3`, ...
    pub reason: String,
    /// Who.
    pub source: GenerationSource,
}

impl Firewall {
    /// Loads the last confirmed generation into the kernel — or, when the policy's files on disk
    /// (drop-ins, a hand-edited local policy) changed while the helper was stopped, those files
    /// merged as a new generation; files that do not validate are refused and reported — and
    /// returns the running service. `ports` tells the console ports of local VMs at every
    /// compile; `names` is the DNS forwarder, which gives VMs their DNS ports and follows each
    /// live generation's names.
    pub async fn start(
        store: Store,
        files: PolicyFiles,
        ports: Arc<dyn ConsolePorts>,
        names: Arc<dyn FollowNames>,
        lists: Arc<ListStore>,
    ) -> Result<Arc<Self>, Error> {
        let engine = Engine::new(&store, ports, names, lists);
        let mut pointers = store
            .live_state()
            .map_err(|e| internal("read the live state", e))?;
        let mut problem = String::new();
        let boot = generations::boot(pointers);
        if let Some(pending) = boot.reverted {
            // The helper stopped during a confirmation window: nobody confirmed, so revert.
            if let Ok(mut rec) = store.record(pending) {
                rec.outcome = Outcome::Reverted;
                let _ = store.save_record(&rec);
            }
            tracing::warn!(
                "generation {pending} was never confirmed; generation {} comes back",
                boot.load
            );
        }
        let confirmed = stored_generation(&store, &files, boot.load)
            .map_err(|e| internal("read the confirmed generation", e))?;
        let mut generation = boot.load;
        let mut live = confirmed.clone();
        let on_disk = store.read_policy_file();
        // What the files on disk say now; a missing local file keeps the confirmed local policy.
        let local_now = match &on_disk {
            Ok(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Ok(None) => None,
            Err(e) => {
                problem = format!("cannot read {}: {e}", store.policy_file().display());
                tracing::error!("{problem}");
                None
            }
        };
        let local_text = local_now.unwrap_or_else(|| local_of(&confirmed.sources).to_owned());
        match files.read_drop_ins(None) {
            Ok(mut disk) => {
                disk.push(files.local(local_text));
                match merged_policy(&disk) {
                    Ok((merged, _)) if *merged.document.as_bytes() == *confirmed.document => {}
                    Ok((merged, _)) => {
                        let owner = std::fs::metadata(store.policy_file())
                            .map(|m| m.uid())
                            .unwrap_or(0);
                        let reason = if drop_ins_of(&disk) == drop_ins_of(&confirmed.sources) {
                            "policy file edited on disk"
                        } else {
                            "policy files changed while the helper was stopped"
                        };
                        generation = store
                            .next_generation()
                            .map_err(|e| internal("number generations", e))?;
                        let rec = record(
                            generation,
                            owner,
                            reason,
                            Outcome::Confirmed,
                            GenerationSource::Boot,
                            &merged.document,
                        );
                        store
                            .save_generation(&rec, merged.document.as_bytes(), &disk)
                            .map_err(|e| internal("store the generation", e))?;
                        tracing::info!("adopted the policy files on disk as generation {generation} ({reason})");
                        live = StoredGeneration {
                            document: merged.document.into_bytes(),
                            sources: disk,
                            record: Some(rec),
                        };
                    }
                    Err(findings) => {
                        let what = match disk.len() {
                            1 => store.policy_file().display().to_string(),
                            n => format!(
                                "{} with the {} drop-ins",
                                store.policy_file().display(),
                                n - 1
                            ),
                        };
                        problem =
                            format!(
                            "{what} is not a valid policy and was not loaded ({}); generation {} \
                             stays live",
                            findings.first().map(ToString::to_string).unwrap_or_default(),
                            pointers.confirmed
                        );
                        tracing::error!("{problem}");
                    }
                }
            }
            Err(e) => {
                problem = format!("the drop-ins were not loaded: {e}");
                tracing::error!("{problem}");
            }
        }
        let policy = Policy::parse(&live.document)
            .map_err(|f| {
                Error::Internal(format!(
                    "stored generation {generation} no longer validates: {}",
                    list(&f)
                ))
            })?
            .policy;
        let policy = Arc::new(policy);
        let (installed, _) = engine.install(&policy, &BTreeSet::new()).await?;
        pointers = generations::loaded(generation);
        store
            .save_live_state(&pointers)
            .map_err(|e| internal("save the live state", e))?;
        let local = local_of(&live.sources).as_bytes();
        if generation > 0
            && on_disk.as_ref().ok().and_then(Option::as_deref) != Some(local)
            && problem.is_empty()
        {
            store
                .write_policy_file(local)
                .map_err(|e| internal("write the policy file", e))?;
        }
        tracing::info!(
            "generation {generation} is live ({} rules)",
            installed.rules
        );
        let (changed, _) = watch::channel(generation);
        let about = live.about();
        let state = State {
            live: Live {
                generation,
                document: text_of(live.document),
                policy,
                installed,
                about,
            },
            pointers,
            problem,
            revert: None,
        };
        let (snapshot, _) = watch::channel(Arc::new(state.snapshot()));
        let fw = Arc::new(Self {
            store,
            files,
            engine,
            state: Mutex::new(state),
            snapshot,
            changed,
            rearm_expiry: Notify::new(),
        });
        Ok(fw)
    }

    /// Receives the live generation number whenever it changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Receives every new snapshot (a new generation, a confirmation, a revert, an expiry).
    pub fn watch_snapshot(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    /// What is live now, without waiting for an apply in progress.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.borrow())
    }

    /// Publishes what readers see; called after every change of `st`.
    fn publish(&self, st: &State) {
        self.snapshot.send_replace(Arc::new(st.snapshot()));
    }

    /// Health and live generation, and whether the drop-ins on disk say what is live.
    pub async fn status(&self) -> Status {
        let snap = self.snapshot();
        let (drift, why) = self.drift().await;
        let problem = [snap.problem.as_str(), why.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            generation: snap.generation,
            pending_until: snap.pending_until,
            vms: u32::try_from(snap.policy.vms.len()).unwrap_or(u32::MAX),
            rules: u32::try_from(snap.policy.rule_count()).unwrap_or(u32::MAX),
            table_present: kernel::table_present().await,
            problem,
            source: snap.about.source,
            policy_hash: snap.about.policy_hash.to_string(),
            applied_at: snap.about.applied_at,
            drift,
        }
    }

    /// Whether the drop-ins on disk, merged with the live local policy, give the live policy;
    /// when not, a sentence on why.
    pub async fn drift(&self) -> (Drift, String) {
        let snap = self.snapshot();
        let files = self.files.clone();
        let local = files.local(local_of(&snap.about.sources).to_owned());
        let live = Arc::clone(&snap.document);
        tokio::task::spawn_blocking(move || {
            let mut sources = match files.read_drop_ins(None) {
                Ok(s) => s,
                Err(e) => return (Drift::Unreadable, e.sentence()),
            };
            sources.push(local);
            match merge(&sources) {
                Err(f) => (
                    Drift::Unreadable,
                    format!("the drop-ins do not merge: {}", first(&f)),
                ),
                Ok(m) if *m.document == *live => (Drift::InSync, String::new()),
                Ok(m) => match Policy::parse(m.document.as_bytes()) {
                    Err(f) => (
                        Drift::Drifted,
                        format!(
                            "the drop-ins on disk are not a valid policy and were not applied: {}",
                            first(&m.attribute(f))
                        ),
                    ),
                    Ok(_) => (
                        Drift::Drifted,
                        "the drop-ins on disk differ from the live policy; \
                         `palisadectl policy reload` applies them"
                            .into(),
                    ),
                },
            }
        })
        .await
        .unwrap_or((Drift::Unreadable, "the drift check failed".into()))
    }

    /// Loads the live policy into the kernel again with fresh facts (a VM got its Spice port,
    /// a name resolved differently); the generation stays the same.
    pub async fn reinstall(&self) -> Result<(), Error> {
        let mut st = self.state.lock().await;
        let (installed, _) = self
            .engine
            .install(&st.live.policy, &st.live.installed.marks)
            .await?;
        st.live.installed = installed;
        self.publish(&st);
        Ok(())
    }

    /// The live generation and its validated policy.
    pub fn live_policy(&self) -> (u64, Arc<Policy>) {
        let snap = self.snapshot();
        (snap.generation, Arc::clone(&snap.policy))
    }

    /// The live generation and its local policy (the document `apply` replaces).
    pub fn get(&self) -> (u64, String) {
        let snap = self.snapshot();
        (snap.generation, local_of(&snap.about.sources).to_owned())
    }

    /// The files of the live generation and where drop-ins go.
    pub fn sources(&self) -> PolicySources {
        let snap = self.snapshot();
        PolicySources {
            generation: snap.generation,
            sources: snap.about.sources.to_vec(),
            admin_dir: self.files.admin_dir.display().to_string(),
            vendor_dir: self.files.vendor_dir.display().to_string(),
            local_file: self.files.local_file.display().to_string(),
        }
    }

    /// `document` as the local policy, merged after the live drop-ins and validated.
    pub fn parse_with_local(
        &self,
        document: &[u8],
    ) -> Result<palisade_dbus::policy::Parsed, Vec<Finding>> {
        let sources = self
            .with_local(document.to_vec())
            .map_err(|_| Policy::parse(document).err().unwrap_or_default())?;
        merged_policy(&sources).map(|(_, parsed)| parsed)
    }

    /// The live drop-ins followed by `document` as the local policy.
    fn with_local(&self, document: Vec<u8>) -> Result<Vec<PolicySource>, Error> {
        let text = String::from_utf8(document)
            .map_err(|e| invalid(Policy::parse(e.as_bytes()).err().unwrap_or_default()))?;
        let mut sources = drop_ins_of(&self.snapshot().about.sources);
        sources.push(self.files.local(text));
        Ok(sources)
    }

    /// The chain `vm`'s traffic meets, as nft text, compiled from the live policy with the
    /// machine's facts as they are now (VM users are looked up, never created).
    pub async fn vm_chain(&self, policy: &Policy, vm: &Vm) -> Result<String, Error> {
        let facts = self.engine.facts(policy, facts::Users::LookUp).await?;
        let ruleset = compile_ruleset(policy, &facts);
        Ok(render::render_chain(&ruleset, &vm.name.chain()))
    }

    /// An nft ruleset for inside `vm`'s guest mirroring its egress policy.
    pub async fn guest_ruleset(&self, policy: &Policy, vm: &Vm) -> Result<String, Error> {
        let facts = self.engine.facts(policy, facts::Users::LookUp).await?;
        Ok(guest::guest_ruleset(vm, policy, &facts))
    }

    /// Every finding about a local policy merged after the live drop-ins; never fails for an
    /// invalid one.
    pub async fn validate(&self, document: Vec<u8>) -> Result<Vec<Finding>, Error> {
        let sources = match self.with_local(document) {
            Ok(s) => s,
            Err(_) => {
                return Ok(vec![Finding {
                    severity: Severity::Error,
                    path: "policy".into(),
                    message: "the policy is not UTF-8 text".into(),
                }])
            }
        };
        tokio::task::spawn_blocking(move || match merged_policy(&sources) {
            Ok((_, parsed)) => parsed.warnings,
            Err(f) => f,
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))
    }

    /// What applying `document` as the local policy would install, and how it differs from
    /// what is live.
    pub async fn preview(&self, document: Vec<u8>) -> Result<Preview, Error> {
        let sources = self.with_local(document)?;
        let (_, parsed) = merged_policy(&sources).map_err(invalid)?;
        let facts = self
            .engine
            .facts(&parsed.policy, facts::Users::LookUp)
            .await?;
        let text = render::render_ruleset(&compile_ruleset(&parsed.policy, &facts));
        let live = self.snapshot();
        let diff = similar::TextDiff::from_lines(&*live.ruleset, &text)
            .unified_diff()
            .header(&format!("generation {}", live.generation), "preview")
            .to_string();
        crate::memory::release_soon();
        Ok(Preview {
            ruleset: text,
            diff,
            warnings: parsed.warnings,
        })
    }

    /// Applies `document` as the local policy, merged after the live drop-ins, as a new
    /// generation if `base` is still live.
    pub async fn apply(
        self: &Arc<Self>,
        document: Vec<u8>,
        base: u64,
        confirm_seconds: u32,
        origin: Origin,
    ) -> Result<Applied, Error> {
        let sources = self.with_local(document)?;
        self.apply_sources(sources, base, confirm_seconds, origin)
            .await
    }

    /// What the policy would be with `document` as the admin drop-in `name` and the other
    /// drop-ins as on disk, and what would change; nothing is changed.
    pub async fn check(&self, name: &str, document: Vec<u8>) -> Result<CandidateReport, Error> {
        let name = DropInName::parse(name)?;
        let text = String::from_utf8(document)
            .map_err(|_| Error::InvalidPolicy(format!("{} is not UTF-8 text", name.as_str())))?;
        let snap = self.snapshot();
        let files = self.files.clone();
        let local = files.local(local_of(&snap.about.sources).to_owned());
        let sources = tokio::task::spawn_blocking(move || {
            let mut s = files.read_drop_ins(Some((&name, &text)))?;
            s.push(local);
            Ok::<_, Error>(s)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let mut report = CandidateReport {
            valid: false,
            findings: Vec::new(),
            changes: false,
            policy_diff: String::new(),
            ruleset_diff: String::new(),
            policy_hash: String::new(),
        };
        let merged = match merge(&sources) {
            Ok(m) => m,
            Err(f) => {
                report.findings = f;
                return Ok(report);
            }
        };
        report.policy_hash = policy_hash(merged.document.as_bytes());
        report.changes = *merged.document != *snap.document;
        report.policy_diff = similar::TextDiff::from_lines(&*snap.document, &merged.document)
            .unified_diff()
            .header(&format!("generation {}", snap.generation), "candidate")
            .to_string();
        match Policy::parse(merged.document.as_bytes()) {
            Err(f) => report.findings = merged.attribute(f),
            Ok(parsed) => {
                let facts = self
                    .engine
                    .facts(&parsed.policy, facts::Users::LookUp)
                    .await?;
                let text = render::render_ruleset(&compile_ruleset(&parsed.policy, &facts));
                report.ruleset_diff = similar::TextDiff::from_lines(&*snap.ruleset, &text)
                    .unified_diff()
                    .header(&format!("generation {}", snap.generation), "candidate")
                    .to_string();
                report.findings = merged.attribute(parsed.warnings);
                report.valid = true;
            }
        }
        crate::memory::release_soon();
        Ok(report)
    }

    /// Reads the drop-ins from disk and applies them after the live local policy as a new
    /// generation, unless that is what is live. Refused while a generation waits for
    /// confirmation: the reload would confirm it without anyone deciding to.
    pub async fn reload(
        self: &Arc<Self>,
        confirm_seconds: u32,
        author_uid: u32,
    ) -> Result<Reloaded, Error> {
        let snap = self.snapshot();
        if snap.pending_until > 0 {
            return Err(Error::Conflict(format!(
                "generation {} waits for confirmation; confirm it (`palisadectl policy confirm \
                 {}`) or let it revert, then reload",
                snap.generation, snap.generation
            )));
        }
        let files = self.files.clone();
        let local = files.local(local_of(&snap.about.sources).to_owned());
        let sources = tokio::task::spawn_blocking(move || {
            let mut s = files.read_drop_ins(None)?;
            s.push(local);
            Ok::<_, Error>(s)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let merged = merge(&sources).map_err(invalid)?;
        if *merged.document == *snap.document {
            return Ok(Reloaded {
                changed: false,
                applied: Applied {
                    generation: snap.generation,
                    pending_until: 0,
                    connections_cut: 0,
                    warnings: Vec::new(),
                },
            });
        }
        let origin = Origin {
            author_uid,
            reason: "reload".into(),
            source: GenerationSource::DropIns,
        };
        let applied = self
            .apply_sources(sources, snap.generation, confirm_seconds, origin)
            .await?;
        Ok(Reloaded {
            changed: true,
            applied,
        })
    }

    /// Applies the policy merged from `sources` as a new generation if `base` is still live.
    async fn apply_sources(
        self: &Arc<Self>,
        sources: Vec<PolicySource>,
        base: u64,
        confirm_seconds: u32,
        origin: Origin,
    ) -> Result<Applied, Error> {
        if confirm_seconds > MAX_CONFIRM_SECONDS {
            return Err(Error::InvalidArgument(format!(
                "a confirmation window of {confirm_seconds} s is too long: the most is {MAX_CONFIRM_SECONDS} s"
            )));
        }
        let (merged, parsed) = merged_policy(&sources).map_err(invalid)?;
        let document = merged.document.into_bytes();
        let hash = policy_hash(&document);
        let mut st = self.state.lock().await;
        // Refuse a stale base before numbering anything.
        generations::apply(st.pointers, base, 0, confirm_seconds, 0)?;
        let generation = self
            .store
            .next_generation()
            .map_err(|e| internal("number generations", e))?;
        let applying =
            generations::apply(st.pointers, base, generation, confirm_seconds, unix_now())?;
        let (installed, cut) = self
            .engine
            .install(&parsed.policy, &st.live.installed.marks)
            .await?;
        let rec = record(
            generation,
            origin.author_uid,
            &origin.reason,
            applying.outcome,
            origin.source,
            &hash,
        );
        let saved = self.store.save_generation(&rec, &document, &sources);
        if let Err(e) = saved {
            // Keep disk and kernel in agreement: put the previous ruleset back.
            let _ = self.engine.install(&st.live.policy, &installed.marks).await;
            return Err(internal("store the new generation", e));
        }
        // The kernel has the new ruleset and the store its generation: from here on nothing may
        // fail the call, or client, disk and memory would disagree. What still goes wrong is
        // reported with the success.
        let mut warnings = parsed.warnings;
        let previous_confirmed = st.pointers.confirmed;
        st.pointers = applying.next;
        let pending_until = st.pointers.pending_until;
        if let Err(e) = self.store.save_live_state(&st.pointers) {
            warnings.push(after_commit(
                "live.json",
                format!(
                    "generation {generation} is live, but could not be recorded as live ({e}); \
                     after a restart generation {previous_confirmed} would come back"
                ),
            ));
        }
        if applying.outcome == Outcome::Confirmed {
            match self.store.write_policy_file(local_of(&sources).as_bytes()) {
                Ok(()) => st.problem.clear(),
                Err(e) => warnings.push(after_commit(
                    "policy.toml",
                    format!(
                        "generation {generation} is live, but {} could not be written ({e})",
                        self.store.policy_file().display()
                    ),
                )),
            }
        }
        st.live = Live {
            generation,
            document: text_of(document),
            policy: Arc::new(parsed.policy),
            installed,
            about: About {
                sources: sources.into(),
                source: origin.source,
                policy_hash: hash.into(),
                applied_at: rec.applied_at,
            },
        };
        self.publish(&st);
        if let Some(task) = st.revert.take() {
            task.abort();
        }
        if confirm_seconds > 0 {
            let fw = Arc::clone(self);
            st.revert = Some(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(confirm_seconds))).await;
                fw.revert_if_pending(generation).await;
            }));
        }
        drop(st);
        tracing::info!(
            "generation {generation} applied by uid {} ({})",
            origin.author_uid,
            origin.reason
        );
        self.announce(generation);
        Ok(Applied {
            generation,
            pending_until,
            connections_cut: cut,
            warnings,
        })
    }

    /// Keeps a pending generation.
    pub async fn confirm(&self, generation: u64) -> Result<(), Error> {
        let mut st = self.state.lock().await;
        let next = match generations::confirm(st.pointers, generation)? {
            generations::Confirming::AlreadyConfirmed => return Ok(()),
            generations::Confirming::Confirm(next) => next,
        };
        // The pointers decide what boot loads: until they are on disk nothing is confirmed, and
        // the window keeps running.
        self.store
            .save_live_state(&next)
            .map_err(|e| internal("save the live state", e))?;
        st.pointers = next;
        if let Some(task) = st.revert.take() {
            task.abort();
        }
        self.publish(&st);
        // What follows only mirrors the pointers for people: a failure is logged, not returned.
        match self.store.record(generation) {
            Ok(mut rec) => {
                rec.outcome = Outcome::Confirmed;
                if let Err(e) = self.store.save_record(&rec) {
                    tracing::error!("generation {generation} is confirmed, but its record could not be updated: {e}");
                }
            }
            Err(e) => tracing::error!("cannot read the record of generation {generation}: {e}"),
        }
        if let Err(e) = self
            .store
            .write_policy_file(local_of(&st.live.about.sources).as_bytes())
        {
            tracing::error!("generation {generation} is confirmed, but the policy file could not be written: {e}");
        }
        tracing::info!("generation {generation} confirmed");
        Ok(())
    }

    /// Applies an earlier generation's files again, drop-ins included, as a new generation.
    pub async fn rollback(
        self: &Arc<Self>,
        generation: u64,
        author_uid: u32,
        source: GenerationSource,
    ) -> Result<Applied, Error> {
        let earlier = match generation {
            0 => None,
            g => stored_generation(&self.store, &self.files, g).ok(),
        }
        .ok_or_else(|| {
            Error::NotFound(format!(
                "there is no generation {generation}; `palisadectl policy history` lists them"
            ))
        })?;
        let base = self.state.lock().await.live.generation;
        let origin = Origin {
            author_uid,
            reason: format!("rollback to {generation}"),
            source,
        };
        self.apply_sources(earlier.sources, base, 0, origin).await
    }

    /// Every generation, newest first.
    /// The unified diff from generation `from`'s merged policy to `to`'s, as they were applied.
    /// Documents are at most the policy's size limit each; the diff gives up on finding the
    /// smallest difference after [`DIFF_DEADLINE`], so no pair of documents holds a caller long.
    pub async fn diff(&self, from: u64, to: u64) -> Result<String, Error> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let document = |g: u64| {
                let missing = || Error::InvalidArgument(format!("there is no generation {g}"));
                if g == 0 {
                    return Err(missing());
                }
                let bytes = store.document(g).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => missing(),
                    _ => internal("read a generation", e),
                })?;
                String::from_utf8(bytes).map_err(|e| internal("read a generation", e))
            };
            let (old, new) = (document(from)?, document(to)?);
            Ok(similar::TextDiff::configure()
                .deadline(std::time::Instant::now() + DIFF_DEADLINE)
                .diff_lines(&old, &new)
                .unified_diff()
                .header(&format!("generation {from}"), &format!("generation {to}"))
                .to_string())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }

    pub async fn history(&self) -> Result<Vec<GenerationInfo>, Error> {
        let live = self.snapshot().generation;
        let records = self
            .store
            .history()
            .map_err(|e| internal("read the history", e))?;
        Ok(records
            .into_iter()
            .map(|r| GenerationInfo {
                generation: r.generation,
                applied_at: r.applied_at,
                author_uid: r.author_uid,
                state: generations::shown_state(live, r.generation, r.outcome),
                origin: r.origin,
                source: r.source,
                policy_hash: r.policy_hash,
            })
            .collect())
    }

    /// The confirmation window of `generation` ran out: the last confirmed generation returns.
    async fn revert_if_pending(&self, generation: u64) {
        let mut st = self.state.lock().await;
        let Some(revert) = generations::window_ended(st.pointers, generation) else {
            return;
        };
        let back = revert.load;
        let stored = stored_generation(&self.store, &self.files, back);
        let policy = stored
            .as_ref()
            .ok()
            .and_then(|g| Policy::parse(&g.document).ok())
            .map(|p| p.policy);
        let (Ok(stored), Some(policy)) = (stored, policy) else {
            tracing::error!(
                "cannot read generation {back} to revert to; generation {generation} stays"
            );
            return;
        };
        match self.engine.install(&policy, &st.live.installed.marks).await {
            Ok((installed, _)) => {
                if let Ok(mut rec) = self.store.record(generation) {
                    rec.outcome = Outcome::Reverted;
                    let _ = self.store.save_record(&rec);
                }
                st.pointers = generations::loaded(back);
                let _ = self.store.save_live_state(&st.pointers);
                let about = stored.about();
                st.live = Live {
                    generation: back,
                    document: text_of(stored.document),
                    policy: Arc::new(policy),
                    installed,
                    about,
                };
                st.revert = None;
                self.publish(&st);
                drop(st);
                tracing::warn!(
                    "generation {generation} was not confirmed in time; generation {back} is back"
                );
                self.announce(back);
            }
            Err(e) => tracing::error!("reverting generation {generation} failed: {e}"),
        }
    }

    /// Recompiles the live policy whenever one of its rules expires, so expired rules vanish
    /// from the kernel at their time without anyone calling.
    pub async fn run_expiry(self: Arc<Self>) {
        loop {
            let next = self.snapshot().policy.next_expiry(SystemTime::now());
            let wait = next
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.rearm_expiry.notified() => continue,
            }
            if next.is_none() {
                continue;
            }
            let mut st = self.state.lock().await;
            match self
                .engine
                .install(&st.live.policy, &st.live.installed.marks)
                .await
            {
                Ok((installed, cut)) => {
                    st.live.installed = installed;
                    self.publish(&st);
                    let generation = st.live.generation;
                    drop(st);
                    tracing::info!("expired rules removed from generation {generation} ({cut} connections cut)");
                    self.announce(generation);
                }
                Err(e) => tracing::error!("removing expired rules failed: {e}"),
            }
        }
    }

    fn announce(&self, generation: u64) {
        self.changed.send_replace(generation);
        self.rearm_expiry.notify_one();
        crate::memory::release_soon();
    }
}

/// What installing a policy needs besides the policy: the machine's facts, the imported lists'
/// contents and the record of their kernel sets.
pub struct Engine {
    /// Where a payload the kernel refused is kept.
    refused: std::path::PathBuf,
    /// The console ports of local VMs.
    ports: Arc<dyn ConsolePorts>,
    /// The DNS forwarder.
    names: Arc<dyn FollowNames>,
    /// The imported lists.
    lists: Arc<ListStore>,
    /// Their kernel sets.
    data: Arc<data::DataSets>,
    /// What the table holds as last installed, for changing it in place (`patch`); `None`
    /// until the first install, and after any failure.
    kernel: Arc<std::sync::Mutex<Option<patch::KernelRecord>>>,
}

impl Engine {
    /// The engine for `store`'s state folder.
    pub fn new(
        store: &Store,
        ports: Arc<dyn ConsolePorts>,
        names: Arc<dyn FollowNames>,
        lists: Arc<ListStore>,
    ) -> Self {
        Self {
            refused: store.refused_payload_file(),
            ports,
            names,
            lists,
            data: Arc::new(data::DataSets::open(store.data_sets_file())),
            kernel: Arc::default(),
        }
    }

    /// The facts for `policy`.
    /// The facts for `policy`, with the kernel sets of its imported lists chosen against what
    /// the kernel holds now.
    async fn facts(&self, policy: &Policy, users: facts::Users) -> Result<compile::Facts, Error> {
        let mut facts =
            facts::gather(policy, users, &*self.ports, &*self.names, &self.lists).await?;
        if !facts.imported.is_empty() {
            let existing = existing_table().await?;
            self.data.name_sets(&mut facts, &existing);
        }
        Ok(facts)
    }

    async fn install(
        &self,
        policy: &Policy,
        previous: &BTreeSet<u32>,
    ) -> Result<(Installed, u32), Error> {
        // What the kernel's table holds is asked once, while the facts are gathered: the list
        // sets are named against it and the structure transaction replaces it.
        let existing = tokio::task::spawn_blocking(data::existing);
        // What the interval sets of rule runs counted, for their successors: read on the other
        // core while the ruleset is compiled.
        let counts = tokio::task::spawn_blocking(range_sets::counts);
        let mut facts = facts::gather(
            policy,
            facts::Users::Create,
            &*self.ports,
            &*self.names,
            &self.lists,
        )
        .await?;
        let existing = existing
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        self.data.name_sets(&mut facts, &existing);
        let ruleset = Arc::new(compile_ruleset(policy, &facts));
        // The text readers are shown is written on the other core while the kernel is changed.
        let text = {
            let r = Arc::clone(&ruleset);
            tokio::task::spawn_blocking(move || render::render_ruleset(&r))
        };
        // The lab bridges exist before rules name them (rules name interfaces by name, so the
        // order is for the guests: their bridge is there when the rules are).
        let networks = policy.networks.clone();
        match tokio::task::spawn_blocking(move || crate::lab::sync_bridges(&networks)).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(warning))) => tracing::warn!("{warning}"),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::Internal(e.to_string())),
        }
        let (data, lists, r) = (
            Arc::clone(&self.data),
            Arc::clone(&self.lists),
            Arc::clone(&ruleset),
        );
        let existing = tokio::task::spawn_blocking(move || {
            data.ensure_loaded(&r, &existing, &lists)?;
            Ok::<_, Error>(existing)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        // The interval maps and sets of rule runs the kernel lacks are made and filled before
        // anything names them.
        // Counts are worth keeping, not worth failing an apply for.
        let counts = match counts.await {
            Ok(Ok(counts)) => counts,
            Ok(Err(e)) => {
                tracing::warn!("the rule sets' counts start anew: {e}");
                range_sets::Counts::new()
            }
            Err(e) => return Err(Error::Internal(e.to_string())),
        };
        let (r, names) = (Arc::clone(&ruleset), existing.sets.clone());
        let made = tokio::task::spawn_blocking(move || range_sets::ensure(&r, &names, &counts))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let (record, r) = (Arc::clone(&self.kernel), Arc::clone(&ruleset));
        let patched = tokio::task::spawn_blocking(move || kernel::apply_in_place(&record, &r))
            .await
            .unwrap_or(false);
        if !patched {
            if let Ok(mut record) = self.kernel.lock() {
                *record = None;
            }
            // The structure transaction leaves every complete list set alone; those no longer
            // named go after it, once no rule looks at them.
            let kept = self.data.kept();
            let structure = kernel::Existing {
                chains: existing.chains.clone(),
                sets: existing
                    .sets
                    .iter()
                    .filter(|s| !kept.contains(*s))
                    .cloned()
                    .collect(),
                counters: Vec::new(),
                limits: Vec::new(),
                mark_maps: Vec::new(),
                bridge_table: existing.bridge_table,
            };
            let structure = tokio::task::spawn_blocking(move || data::with_objects(structure))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            let before = tokio::task::spawn_blocking(kernel::generation_before_load)
                .await
                .unwrap_or(None);
            if let Err(e) = kernel::apply_structure(&ruleset, &structure, &self.refused).await {
                let _ = tokio::task::spawn_blocking(move || range_sets::discard(&made)).await;
                return Err(e);
            }
            let (record, r) = (Arc::clone(&self.kernel), Arc::clone(&ruleset));
            let _ =
                tokio::task::spawn_blocking(move || kernel::remember(&record, &r, before)).await;
        }
        self.names.follow(policy, &ruleset);
        let (data, r) = (Arc::clone(&self.data), Arc::clone(&ruleset));
        let deleted = tokio::task::spawn_blocking(move || data.delete_unused(&r, &existing))
            .await
            .unwrap_or_default();
        if !deleted.is_empty() {
            tracing::info!(
                "deleted the sets of lists no rule names: {}",
                deleted.join(", ")
            );
        }
        let gone = previous.difference(&ruleset.live_marks).copied().collect();
        let cut = conntrack::cut_connections(&gone).await;
        let text = text.await.map_err(|e| Error::Internal(e.to_string()))?;
        let installed = Installed {
            text: Arc::from(text),
            rules: ruleset.rule_count(),
            marks: ruleset.live_marks.clone(),
            counters: ruleset.counters_and_tags().into(),
        };
        Ok((installed, cut))
    }
}

/// What the kernel's table holds now (netlink dumps; no set element is read).
async fn existing_table() -> Result<kernel::Existing, Error> {
    tokio::task::spawn_blocking(data::existing)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

fn record(
    generation: u64,
    author_uid: u32,
    origin: &str,
    outcome: Outcome,
    source: GenerationSource,
    hash: &str,
) -> GenerationRecord {
    GenerationRecord {
        generation,
        applied_at: unix_now(),
        author_uid,
        origin: origin.into(),
        outcome,
        source,
        policy_hash: hash.into(),
    }
}

/// A generation as the store keeps it.
#[derive(Debug, Clone)]
struct StoredGeneration {
    document: Vec<u8>,
    sources: Vec<PolicySource>,
    record: Option<GenerationRecord>,
}

impl StoredGeneration {
    fn about(&self) -> About {
        let hash = match &self.record {
            Some(r) if !r.policy_hash.is_empty() => r.policy_hash.clone(),
            _ => policy_hash(&self.document),
        };
        About {
            sources: self.sources.clone().into(),
            source: self
                .record
                .as_ref()
                .map_or(GenerationSource::Unrecorded, |r| r.source),
            policy_hash: hash.into(),
            applied_at: self.record.as_ref().map_or(0, |r| r.applied_at),
        }
    }
}

/// Generation `generation` from the store (0: the empty policy before any). Generations stored
/// before their sources were kept had one file, the local policy, which was their document.
fn stored_generation(
    store: &Store,
    files: &PolicyFiles,
    generation: u64,
) -> std::io::Result<StoredGeneration> {
    if generation == 0 {
        return Ok(StoredGeneration {
            document: Vec::new(),
            sources: vec![files.local(String::new())],
            record: None,
        });
    }
    let document = store.document(generation)?;
    let sources = match store.sources(generation)? {
        Some(s) => s,
        None => vec![files.local(String::from_utf8_lossy(&document).into_owned())],
    };
    Ok(StoredGeneration {
        document,
        sources,
        record: store.record(generation).ok(),
    })
}

/// The local policy among `sources` (empty when none).
fn local_of(sources: &[PolicySource]) -> &str {
    sources
        .iter()
        .rev()
        .find(|s| s.kind == SourceKind::Local)
        .map_or("", |s| s.document.as_str())
}

/// The drop-ins among `sources`.
fn drop_ins_of(sources: &[PolicySource]) -> Vec<PolicySource> {
    sources
        .iter()
        .filter(|s| s.kind != SourceKind::Local)
        .cloned()
        .collect()
}

/// `sources` merged and validated; the findings name the drop-in they are about.
fn merged_policy(
    sources: &[PolicySource],
) -> Result<(Merged, palisade_dbus::policy::Parsed), Vec<Finding>> {
    let merged = merge(sources)?;
    match Policy::parse(merged.document.as_bytes()) {
        Ok(mut parsed) => {
            parsed.warnings = merged.attribute(std::mem::take(&mut parsed.warnings));
            Ok((merged, parsed))
        }
        Err(f) => Err(merged.attribute(f)),
    }
}

/// SHA-256 of a merged document, hex: what `Status` and the metrics file call the policy hash.
pub fn policy_hash(document: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(document)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn first(findings: &[Finding]) -> String {
    findings
        .first()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    tracing::error!("cannot {what}: {e}");
    Error::Internal(format!("the helper could not {what}: {e}"))
}

/// The error for a document with problems: every error line, then the warnings.
fn invalid(findings: Vec<Finding>) -> Error {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    Error::InvalidPolicy(format!(
        "the policy has {errors} problem{}; nothing was changed:\n{}",
        if errors == 1 { "" } else { "s" },
        list(&findings)
    ))
}

fn list(findings: &[Finding]) -> String {
    let mut lines: Vec<String> = findings
        .iter()
        .take(MAX_LISTED_PROBLEMS)
        .map(ToString::to_string)
        .collect();
    if findings.len() > MAX_LISTED_PROBLEMS {
        lines.push(format!(
            "... and {} more",
            findings.len() - MAX_LISTED_PROBLEMS
        ));
    }
    lines.join("\n")
}

impl State {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            generation: self.live.generation,
            document: Arc::clone(&self.live.document),
            policy: Arc::clone(&self.live.policy),
            pending_until: self.pointers.pending_until,
            ruleset: Arc::clone(&self.live.installed.text),
            counters: Arc::clone(&self.live.installed.counters),
            about: self.live.about.clone(),
            problem: self.problem.clone(),
        }
    }
}

/// A stored or received document as text. Documents are validated before they get here, and
/// validation reads them as UTF-8, so nothing is lost.
fn text_of(document: Vec<u8>) -> Arc<str> {
    match String::from_utf8(document) {
        Ok(s) => Arc::from(s),
        Err(e) => Arc::from(String::from_utf8_lossy(e.as_bytes())),
    }
}

/// A warning about a step after the kernel commit that did not work out: the apply succeeded.
fn after_commit(what: &str, message: String) -> Finding {
    tracing::error!("{message}");
    Finding {
        severity: Severity::Warning,
        path: format!("store.{what}"),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_policy_merges_and_validates() {
        let local = |doc: &str| PolicySource {
            name: "policy.toml".into(),
            kind: SourceKind::Local,
            path: "/etc/palisade/policy.toml".into(),
            document: doc.into(),
        };
        let lab =
            "[[network]]\nname = \"lab\"\nsubnet = \"10.77.0.0/24\"\naddress = \"10.77.0.1\"\n";
        let (_, parsed) = merged_policy(&[local(lab)]).unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(parsed.policy.networks.len(), 1);
    }
}
