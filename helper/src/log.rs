//! The drop log behind `Log`: what the firewall's logged rules decided, read from the kernel's
//! nflog by the helper itself (no ulogd, journald or rsyslog, which lose it in containers and
//! without a syslog daemon), attributed to its rule (the tag in the prefix), to the VM or local
//! user whose socket sent it (its uid), and kept for readers; and every rule's counter with the
//! time it was last seen to count.
//!
//! Data flows one way: the kernel → the reader thread (`nflog`, then `entry` with names for
//! the uids) → one task that numbers entries into the ring (`ring`), appends them to the file
//! when the policy asks for one, and hands bursts to followers at most every `COALESCE`.
//!
//! Invariants. Memory is bounded whatever happens on the wire: the ring holds `ring::CAPACITY`
//! entries, the channel from the reader `CHANNEL_BATCHES` batches of at most one kernel batch,
//! a delivery at most `DELIVERY_MAX` entries, and followers are at most `MAX_FOLLOWERS`. The
//! packet path never waits for us: the kernel rate-limits what it logs (one limit per owner) and
//! drops what our socket cannot take; such losses are counted from nflog's sequence numbers and
//! reported to followers as `missed`, while the rules' counters count every packet.

pub mod entry;
pub mod nflog;
pub mod ring;

use crate::clock::unix_now;
use crate::firewall::ruleset::{RuleTag, LOG_GROUP};
use crate::firewall::Firewall;
use entry::{logged_rule, Sender};
use palisade_dbus::policy::{LogSettings, VmName};
use palisade_dbus::types::{LoggedPacket, LoggedRule, RuleCounter};
use palisade_dbus::Error;
use ring::{LogFile, Ring};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};

/// How long a burst is gathered before followers hear of it.
const COALESCE: Duration = Duration::from_millis(100);
/// Most entries one delivery carries; the rest of a flood is counted as missed.
const DELIVERY_MAX: usize = 1_000;
/// Batches waiting between the reader thread and the log task.
const CHANNEL_BATCHES: usize = 64;
/// Most followers at once.
pub const MAX_FOLLOWERS: usize = 64;
/// Most entries one `show` returns.
pub const SHOW_MAX: u32 = 10_000;
/// How often the counters are read to learn when each rule last counted.
const COUNTER_POLL: Duration = Duration::from_secs(5);
/// The log file under the state folder.
const FILE_NAME: &str = "drop.log";

/// Entries for followers, gathered over one `COALESCE`.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub packets: Vec<LoggedPacket>,
    /// Entries lost since the last delivery.
    pub missed: u64,
}

/// Someone following the log: a bus name, and the VM it follows (all when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    pub name: String,
    pub vm: Option<VmName>,
}

impl Follower {
    /// Whether this follower is shown `entry`.
    pub fn wants(&self, entry: &LoggedPacket) -> bool {
        concerns(self.vm.as_ref(), entry)
    }
}

/// Whether `entry` concerns VM `vm` (every entry when `None`): the VM sent it or its rule
/// decided it.
fn concerns(vm: Option<&VmName>, entry: &LoggedPacket) -> bool {
    vm.is_none_or(|vm| entry.vm == vm.as_str() || entry.rule.vm == vm.as_str())
}

/// The drop log.
pub struct DropLog {
    firewall: Arc<Firewall>,
    state: Mutex<State>,
    deliveries: broadcast::Sender<Arc<Delivery>>,
    file_path: PathBuf,
    /// Why the kernel's log cannot be read, when it cannot.
    unavailable: Option<String>,
}

impl std::fmt::Debug for DropLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropLog").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    ring: Ring,
    file: Option<LogFile>,
    followers: Vec<Follower>,
    /// When each rule was last seen to decide a packet, Unix seconds.
    last_hit: HashMap<LoggedRule, u64>,
    /// Each counter's packets at the last reading.
    counted: HashMap<String, u64>,
    missed: u64,
}

impl DropLog {
    /// Binds the kernel's log group and starts reading it; the earlier entries come back from
    /// the file when the live policy keeps one. When the group cannot be bound the helper runs
    /// on without a drop log, and its calls say why.
    pub fn start(firewall: Arc<Firewall>, state_dir: &Path) -> Arc<Self> {
        let file_path = state_dir.join(FILE_NAME);
        let (batches, received) = mpsc::channel(CHANNEL_BATCHES);
        let unavailable = match nflog::NflogSocket::bind(LOG_GROUP) {
            Ok(socket) => {
                let fw = Arc::clone(&firewall);
                let spawned = std::thread::Builder::new()
                    .name("drop-log".into())
                    .spawn(move || read_kernel(socket, &fw, &batches));
                spawned
                    .err()
                    .map(|e| format!("cannot start the drop log's reader: {e}"))
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = &unavailable {
            tracing::error!("the drop log is off: {why}");
        }
        let mut state = State::default();
        let settings = firewall.snapshot().policy.settings.log;
        if settings.keep_on_disk {
            let file = LogFile::new(&file_path, settings.disk_bytes);
            file.load(&mut state.ring);
            state.file = Some(file);
        }
        let (deliveries, _) = broadcast::channel(16);
        let log = Arc::new(Self {
            firewall,
            state: Mutex::new(state),
            deliveries,
            file_path,
            unavailable,
        });
        tokio::spawn(Arc::clone(&log).gather(received));
        tokio::spawn(Arc::clone(&log).poll_counters());
        log
    }

    /// Each burst as it is logged.
    pub fn deliveries(&self) -> broadcast::Receiver<Arc<Delivery>> {
        self.deliveries.subscribe()
    }

    /// The followers now.
    pub fn followers(&self) -> Vec<Follower> {
        self.lock().followers.clone()
    }

    /// Adds (or changes) a follower.
    pub fn follow(&self, follower: Follower) -> Result<(), Error> {
        self.available()?;
        let mut st = self.lock();
        st.followers.retain(|f| f.name != follower.name);
        if st.followers.len() >= MAX_FOLLOWERS {
            return Err(Error::RateLimited(format!(
                "{MAX_FOLLOWERS} programs already follow the log; try again later"
            )));
        }
        st.followers.push(follower);
        Ok(())
    }

    /// Removes a follower (it asked, or it left the bus).
    pub fn unfollow(&self, name: &str) {
        self.lock().followers.retain(|f| f.name != name);
    }

    /// The latest entries concerning `vm` (all when `None`) logged at or after `since_ms`.
    pub fn show(
        &self,
        vm: Option<&VmName>,
        since_ms: u64,
        max: u32,
    ) -> Result<Vec<LoggedPacket>, Error> {
        self.available()?;
        let max = usize::try_from(max.min(SHOW_MAX)).unwrap_or(0);
        Ok(self.lock().ring.select(since_ms, max, |e| concerns(vm, e)))
    }

    /// The counters of `vm`'s rules (every rule's when `None`), read from the kernel now.
    pub async fn counters(&self, vm: Option<&VmName>) -> Result<Vec<RuleCounter>, Error> {
        let snapshot = self.firewall.snapshot();
        let read = crate::firewall::kernel::counters().await?;
        let now = unix_now();
        let mut st = self.lock();
        st.note_counts(&snapshot.counters, &read, now);
        let mut out = Vec::new();
        for (name, tag) in snapshot.counters.iter() {
            let rule = logged_rule(tag);
            if vm.is_some_and(|vm| rule.vm != vm.as_str()) {
                continue;
            }
            let counted = read.get(name).copied().unwrap_or_default();
            out.push(RuleCounter {
                last_hit: st.last_hit.get(&rule).copied().unwrap_or(0),
                rule,
                packets: counted.packets,
                bytes: counted.bytes,
            });
        }
        Ok(out)
    }

    fn available(&self) -> Result<(), Error> {
        match &self.unavailable {
            Some(why) => Err(Error::Internal(format!(
                "the drop log is off on this machine: {why}"
            ))),
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Numbers, keeps and hands on what the reader sends, a burst at a time.
    async fn gather(self: Arc<Self>, mut received: mpsc::Receiver<(Vec<LoggedPacket>, u64)>) {
        while let Some(first) = received.recv().await {
            tokio::time::sleep(COALESCE).await;
            let mut burst = vec![first];
            while let Ok(more) = received.try_recv() {
                burst.push(more);
            }
            let settings = self.firewall.snapshot().policy.settings.log;
            let delivery = self.keep(burst, settings);
            if !delivery.packets.is_empty() || delivery.missed > 0 {
                // Nobody listening is no error.
                let _ = self.deliveries.send(Arc::new(delivery));
            }
        }
    }

    fn keep(&self, burst: Vec<(Vec<LoggedPacket>, u64)>, settings: LogSettings) -> Delivery {
        let mut st = self.lock();
        let mut delivery = Delivery {
            missed: std::mem::take(&mut st.missed),
            ..Delivery::default()
        };
        let mut numbered = Vec::new();
        for (packets, lost) in burst {
            delivery.missed += lost;
            for packet in packets {
                let packet = st.ring.push(packet);
                st.last_hit
                    .insert(packet.rule.clone(), packet.at_ms / 1_000);
                numbered.push(packet);
            }
        }
        self.write_file(&mut st, &numbered, settings);
        if numbered.len() > DELIVERY_MAX {
            delivery.missed += (numbered.len() - DELIVERY_MAX) as u64;
            numbered.truncate(DELIVERY_MAX);
        }
        delivery.packets = numbered;
        delivery
    }

    /// Keeps `entries` in the file when the policy wants one; removes the file when it no
    /// longer does.
    fn write_file(&self, st: &mut State, entries: &[LoggedPacket], settings: LogSettings) {
        if !settings.keep_on_disk {
            if let Some(mut file) = st.file.take() {
                file.remove();
            }
            return;
        }
        let file = st
            .file
            .get_or_insert_with(|| LogFile::new(&self.file_path, settings.disk_bytes));
        file.resize(settings.disk_bytes);
        if let Err(e) = file.append(entries) {
            tracing::warn!(
                "cannot write the drop log file {}: {e}",
                self.file_path.display()
            );
        }
    }

    /// Reads the counters every `COUNTER_POLL`, so the rules that do not log learn their last
    /// hit too.
    async fn poll_counters(self: Arc<Self>) {
        let mut tick = tokio::time::interval(COUNTER_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snapshot = self.firewall.snapshot();
            if let Ok(read) = crate::firewall::kernel::counters().await {
                self.lock()
                    .note_counts(&snapshot.counters, &read, unix_now());
            }
        }
    }
}

impl State {
    /// Notes which counters went up since the last reading (their rules were hit by `now`),
    /// and forgets the rules no longer live.
    fn note_counts(
        &mut self,
        tags: &[(String, RuleTag)],
        read: &HashMap<String, palisade_nfnetlink::Counted>,
        now: u64,
    ) {
        // The readings are kept anew for the live counters only: a retain that searched the
        // live list for each name was quadratic (10,000 rules: 10^8 comparisons every poll).
        let mut counted = HashMap::with_capacity(tags.len());
        let mut live = std::collections::HashSet::new();
        for (name, tag) in tags {
            let rule = logged_rule(tag);
            let packets = read.get(name).map_or(0, |c| c.packets);
            if self.counted.get(name).is_some_and(|&b| packets > b) {
                let hit = self.last_hit.entry(rule.clone()).or_insert(0);
                *hit = (*hit).max(now);
            }
            counted.insert(name.clone(), packets);
            live.insert(rule);
        }
        self.counted = counted;
        self.last_hit.retain(|rule, _| live.contains(rule));
    }
}

/// The reader thread: reads the kernel's batches, turns them into entries and sends them on,
/// until the helper stops.
fn read_kernel(
    mut socket: nflog::NflogSocket,
    firewall: &Firewall,
    batches: &mpsc::Sender<(Vec<LoggedPacket>, u64)>,
) {
    let mut users = UserNames::default();
    loop {
        let batch = match socket.read() {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!("the drop log stopped reading the kernel: {e}");
                return;
            }
        };
        if batch.packets.is_empty() && batch.lost == 0 {
            if batches.is_closed() {
                return;
            }
            continue;
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let policy = firewall.snapshot().policy.clone();
        let entries = batch
            .packets
            .iter()
            .filter_map(|p| {
                let sender = p
                    .uid
                    .map(|uid| users.sender(uid, &policy))
                    .unwrap_or_default();
                entry::entry(p, at_ms, sender)
            })
            .collect();
        // Waiting here lets the kernel's queue fill: what it then drops is counted.
        if batches.blocking_send((entries, batch.lost)).is_err() {
            return;
        }
    }
}

/// Names of uids, asked of NSS once each (bounded: forgotten all at once when full).
#[derive(Default)]
struct UserNames {
    names: HashMap<u32, String>,
}

impl UserNames {
    const MAX: usize = 4_096;

    /// Who uid `uid` is: its user's name (or `#uid`), and the VM whose user it is.
    fn sender(&mut self, uid: u32, policy: &palisade_dbus::policy::Policy) -> Sender {
        if self.names.len() >= Self::MAX {
            self.names.clear();
        }
        let user = self
            .names
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map_or_else(|| format!("#{uid}"), |u| u.name)
            })
            .clone();
        let vm = policy
            .vms
            .iter()
            .find(|vm| vm.name.system_user() == user)
            .map(|vm| vm.name.to_string());
        Sender {
            vm,
            user: Some(user),
        }
    }
}

#[cfg(test)]
mod tests;
