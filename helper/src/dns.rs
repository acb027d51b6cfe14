//! The DNS forwarder: every guest's DNS is redirected here (one listening port per VM, so the
//! port says for certain which VM asked), passed to the upstream, and — before the answer goes
//! back — the answered addresses of names the VM's rules mention are put in that VM's answers
//! sets with a timeout tied to the TTL, acknowledged by the kernel. The guest never knows an
//! address the firewall does not.
//!
//! The answer itself passes through unchanged (EDNS and all). The forwarder answers by itself
//! only to refuse: NXDOMAIN for names a blocking domain list holds and for
//! `use-application-dns.net` (so browsers keep their automatic DNS-over-HTTPS off), REFUSED for
//! unknown names in strict mode, SERVFAIL when the upstream fails or the firewall did not take
//! the addresses — never an answer whose addresses are not admitted.
//!
//! The firewall drives it: at each compile it asks for the VMs' ports and the addresses of the
//! names the helper resolves itself (`FollowNames`), and once a generation is live it hands over
//! the policy and ruleset, from which the names to follow are rebuilt (`names`), and the host
//! names to keep refreshed (`hosts`). A name that fails to resolve marks only its own rule
//! (`journal`). A remote console whose name answers a new address asks the firewall to install
//! the policy again (`reinstall_requests`), since console sets are part of the structure.

pub mod admit;
pub mod answer;
pub mod hosts;
pub mod journal;
pub mod listen;
pub mod names;
pub mod upstream;

use crate::blocklist::store::ListStore;
use crate::firewall::facts::{FollowNames, Resolving};
use crate::firewall::ruleset::{Ruleset, SetKind, TABLE};
use admit::{Admission, Admitter};
use answer::{NotAQuestion, Question};
use hickory_proto::op::ResponseCode;
use journal::{Entry, Journal};
use names::{DomainSet, NameTable};
use palisade_dbus::policy::{
    Destination, DnsSettings, Family, HostName, Policy, ShortName, VmName,
};
use palisade_dbus::types::{DnsEvent, DnsNameState, DnsOutcome};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use upstream::{Transport, Upstream};

/// The journal's word for names the helper resolves itself (host-wide rules, remote consoles).
pub const HOST: &str = "host";

/// A journal entry for one lookup of a host name the helper asks for itself (both families at
/// once), answered with nothing yet.
fn host_entry(name: &str) -> Entry<'_> {
    Entry {
        vm: HOST,
        name,
        kind: "A+AAAA".into(),
        outcome: DnsOutcome::Answered,
        admitted: Vec::new(),
        rules: Vec::new(),
        detail: String::new(),
        patterns: vec![name.to_owned()],
        admit_us: 0,
    }
}

/// The name browsers ask to learn whether they may turn on DNS over HTTPS by themselves
/// (Mozilla's canary domain): NXDOMAIN says no.
const DOH_CANARY: &str = "use-application-dns.net";

/// The forwarder service.
pub struct Forwarder {
    me: Weak<Forwarder>,
    live: RwLock<Live>,
    listeners: Mutex<BTreeMap<VmName, listen::Listener>>,
    admitter: Admitter,
    journal: Journal,
    lists: Arc<ListStore>,
    /// Domain lists by name, with the content hash they were read at.
    domains: Mutex<HashMap<ShortName, (String, Arc<DomainSet>)>>,
    /// The host names the helper resolves itself, and when each is asked next.
    hosts: Mutex<BTreeMap<HostName, HostTarget>>,
    /// What each of them answered when the firewall last asked (`resolve`): its addresses, or
    /// why it did not.
    resolved: Mutex<HashMap<HostName, Result<BTreeSet<IpAddr>, String>>>,
    /// Wakes the refresher when the names change.
    hosts_changed: Arc<tokio::sync::Notify>,
    refresher_started: AtomicBool,
    /// Counts the requests to install the live policy again (a remote console moved).
    reinstall: tokio::sync::watch::Sender<u64>,
}

/// A host name the refresher keeps: the learned sets that follow it, whether a remote console
/// is reached by it, and when it is asked next.
#[derive(Debug, Clone)]
struct HostTarget {
    sets: Vec<(Family, String)>,
    console: bool,
    due: Instant,
}

/// What the live generation says.
struct Live {
    table: Arc<NameTable>,
    upstream: Result<Arc<Upstream>, String>,
    /// Shared, not cloned per question.
    settings: Arc<DnsSettings>,
}

impl Forwarder {
    /// The service; no VM is served until the firewall asks for ports.
    pub fn new(lists: Arc<ListStore>) -> std::io::Result<Arc<Self>> {
        let admitter = Admitter::start(TABLE)?;
        let settings = DnsSettings::default();
        let upstream = Upstream::new(&settings.upstream)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            live: RwLock::new(Live {
                table: Arc::default(),
                upstream,
                settings: Arc::new(settings),
            }),
            listeners: Mutex::default(),
            admitter,
            journal: Journal::default(),
            lists,
            domains: Mutex::default(),
            hosts: Mutex::default(),
            resolved: Mutex::default(),
            hosts_changed: Arc::default(),
            refresher_started: AtomicBool::new(false),
            reinstall: tokio::sync::watch::channel(0).0,
        }))
    }

    /// Changes each time a remote console's name answers an address its console sets lack:
    /// the live policy is to be installed again with fresh facts.
    pub fn reinstall_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reinstall.subscribe()
    }

    /// Keeps the host names' sets following their answers, for as long as the forwarder lives.
    async fn refresh_hosts(me: Weak<Forwarder>) {
        loop {
            let Some(forwarder) = me.upgrade() else {
                return;
            };
            let now = Instant::now();
            let due: Vec<(HostName, HostTarget)> = {
                let Ok(hosts) = forwarder.hosts.lock() else {
                    return;
                };
                hosts
                    .iter()
                    .filter(|(_, t)| t.due <= now)
                    .map(|(n, t)| (n.clone(), t.clone()))
                    .collect()
            };
            // All at once: a name whose upstream is slow to fail must not hold the others past
            // their expiry.
            let refreshed = futures_util::future::join_all(due.iter().map(|(name, target)| {
                let forwarder = &forwarder;
                async move { (name, forwarder.refresh_host(name, target).await) }
            }))
            .await;
            let wake = {
                let Ok(mut hosts) = forwarder.hosts.lock() else {
                    return;
                };
                for (name, next) in refreshed {
                    if let Some(t) = hosts.get_mut(name) {
                        t.due = Instant::now() + next;
                    }
                }
                // After the refreshes: the names just asked are due again too.
                hosts
                    .values()
                    .map(|t| t.due)
                    .min()
                    .unwrap_or_else(|| Instant::now() + hosts::LONGEST)
            };
            let notify = Arc::clone(&forwarder.hosts_changed);
            drop(forwarder);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = notify.notified() => {}
            }
        }
    }

    /// Asks for one host name again and puts its answer in its sets. Returns when to ask next.
    async fn refresh_host(&self, name: &HostName, target: &HostTarget) -> Duration {
        let (upstream, settings) = match self.live.read() {
            Ok(live) => (live.upstream.clone(), Arc::clone(&live.settings)),
            Err(_) => return hosts::RETRY,
        };
        let mut entry = host_entry(name.as_str());
        let found = match upstream {
            Ok(u) => hosts::lookup(&u, name).await,
            Err(why) => Err(why),
        };
        let found = match found {
            Ok(found) => found,
            Err(why) => {
                tracing::warn!("DNS for the host: {name}: {why}");
                entry.outcome = DnsOutcome::Failed;
                entry.detail = why;
                self.journal.record(entry);
                return hosts::RETRY;
            }
        };
        let admissions = admissions(target.sets.iter(), &found, &settings);
        if !admissions.is_empty() {
            let started = std::time::Instant::now();
            let admitted = self.admitter.admit(admissions).await;
            entry.admit_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if let Err(e) = admitted {
                tracing::warn!("DNS for the host: {name}: {e}");
                entry.outcome = DnsOutcome::Failed;
                entry.detail = e.to_string();
                self.journal.record(entry);
                return hosts::RETRY;
            }
            entry.outcome = DnsOutcome::Admitted;
        }
        entry.admitted = found.iter().map(|(a, _)| a.to_string()).collect();
        self.journal.record(entry);
        if target.console {
            let now = hosts::addresses_of(&found);
            let known = self
                .resolved
                .lock()
                .ok()
                .and_then(|r| r.get(name).cloned())
                .and_then(Result::ok)
                .unwrap_or_default();
            if !now.is_subset(&known) {
                tracing::info!(
                    "the remote console host {name} answers new addresses; installing the \
                     policy again"
                );
                self.reinstall.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        hosts::next_lookup(&found, settings.ttl_floor_seconds)
    }

    /// Records what the host names answered when the live generation was installed, so their
    /// state (and a failure) shows before the refresher asks again.
    fn record_resolved(&self) {
        let Ok(resolved) = self.resolved.lock().map(|r| r.clone()) else {
            return;
        };
        for (name, answered) in resolved {
            let plain = name.to_string();
            let (outcome, admitted, detail) = match answered {
                Ok(addresses) => (
                    DnsOutcome::Admitted,
                    addresses.iter().map(ToString::to_string).collect(),
                    String::new(),
                ),
                Err(why) => (DnsOutcome::Failed, Vec::new(), why),
            };
            self.journal.record(Entry {
                outcome,
                admitted,
                detail,
                ..host_entry(&plain)
            });
        }
    }

    /// The host names of `policy` and `ruleset` to keep refreshed: each learned set's name, and
    /// remote consoles reached by name. Known names keep their next lookup; new ones are asked
    /// when the addresses the install put in their sets could start to expire. Returns the
    /// names.
    fn follow_hosts(&self, policy: &Policy, ruleset: &Ruleset) -> Vec<HostName> {
        let mut targets: BTreeMap<HostName, HostTarget> = BTreeMap::new();
        let first = Instant::now()
            + Duration::from_secs(u64::from(policy.settings.dns.ttl_floor_seconds.max(1)));
        fn target<'t>(
            targets: &'t mut BTreeMap<HostName, HostTarget>,
            name: &HostName,
            first: Instant,
        ) -> &'t mut HostTarget {
            targets.entry(name.clone()).or_insert_with(|| HostTarget {
                sets: Vec::new(),
                console: false,
                due: first,
            })
        }
        for set in &ruleset.sets {
            let Some(follows) = &set.follows else {
                continue;
            };
            let family = match set.kind {
                SetKind::Ipv6Learned => Family::V6,
                _ => Family::V4,
            };
            target(&mut targets, &follows.name, first)
                .sets
                .push((family, set.name.clone()));
        }
        for rc in &policy.remote_consoles {
            if let Destination::Host(h) = &rc.host {
                target(&mut targets, h, first).console = true;
            }
        }
        let names: Vec<HostName> = targets.keys().cloned().collect();
        let Ok(mut hosts) = self.hosts.lock() else {
            return names;
        };
        for (name, t) in targets.iter_mut() {
            if let Some(old) = hosts.get(name) {
                t.due = old.due;
            }
        }
        if let Ok(mut resolved) = self.resolved.lock() {
            resolved.retain(|name, _| targets.contains_key(name));
        }
        *hosts = targets;
        drop(hosts);
        self.hosts_changed.notify_one();
        if !self.refresher_started.swap(true, Ordering::SeqCst) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(Self::refresh_hosts(self.me.clone()));
                }
                Err(_) => self.refresher_started.store(false, Ordering::SeqCst),
            }
        }
        names
    }

    /// The latest questions, of `vm` if given, after `after_seq` if given.
    pub fn events(&self, vm: Option<&str>, after_seq: Option<u64>) -> Vec<DnsEvent> {
        self.journal.events(vm, after_seq)
    }

    /// The state of every name the live policy's VM rules mention.
    pub fn names(&self) -> Vec<DnsNameState> {
        self.journal.names()
    }

    /// Answers one question of `vm`: `None` drops it.
    async fn answer(&self, vm: &VmName, bytes: Vec<u8>, transport: Transport) -> Option<Vec<u8>> {
        let q = match answer::read_question(&bytes) {
            Ok(q) => q,
            Err(NotAQuestion::Unreadable) => return None,
            Err(NotAQuestion::Unsupported { id, code }) => {
                return Some(answer::error_answer(id, code))
            }
        };
        let (table, upstream, settings) = {
            let live = self.live.read().ok()?;
            (
                Arc::clone(&live.table),
                live.upstream.clone(),
                Arc::clone(&live.settings),
            )
        };
        let mut entry = Entry {
            vm: vm.as_str(),
            name: &q.name,
            kind: q.kind.to_string(),
            outcome: DnsOutcome::Answered,
            admitted: Vec::new(),
            rules: Vec::new(),
            detail: String::new(),
            patterns: Vec::new(),
            admit_us: 0,
        };
        let reply = self
            .decide(
                vm, &q, &bytes, transport, &table, upstream, &settings, &mut entry,
            )
            .await;
        self.journal.record(entry);
        Some(reply)
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        vm: &VmName,
        q: &Question,
        bytes: &[u8],
        transport: Transport,
        table: &NameTable,
        upstream: Result<Arc<Upstream>, String>,
        settings: &DnsSettings,
        entry: &mut Entry<'_>,
    ) -> Vec<u8> {
        if q.name == DOH_CANARY {
            return refuse(
                entry,
                q,
                DnsOutcome::Refused,
                ResponseCode::NXDomain,
                "browsers keep their own DNS over HTTPS off".into(),
            );
        }
        let Some(names) = table.get(vm) else {
            return refuse(
                entry,
                q,
                DnsOutcome::Failed,
                ResponseCode::ServFail,
                "the VM's names are not set up yet".into(),
            );
        };
        if let Some(list) = names.blocked_by(&q.name) {
            return refuse(
                entry,
                q,
                DnsOutcome::Blocked,
                ResponseCode::NXDomain,
                format!("listed in {list}"),
            );
        }
        let matching = names.matching(&q.name);
        if matching.is_empty() && names.strict {
            return refuse(
                entry,
                q,
                DnsOutcome::Refused,
                ResponseCode::Refused,
                "strict DNS: no rule of this VM names it".into(),
            );
        }
        entry.patterns = matching.iter().map(|m| m.pattern.to_string()).collect();
        entry.rules = matching
            .iter()
            .flat_map(|m| {
                m.rules
                    .iter()
                    .map(|r| u32::try_from(*r).unwrap_or(u32::MAX))
            })
            .collect();
        let upstream = match upstream {
            Ok(u) => u,
            Err(why) => return refuse(entry, q, DnsOutcome::Failed, ResponseCode::ServFail, why),
        };
        let reply = match upstream.exchange(bytes, transport).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("DNS for {vm}: {} {}: {e}", q.name, q.kind);
                return refuse(
                    entry,
                    q,
                    DnsOutcome::Failed,
                    ResponseCode::ServFail,
                    e.to_string(),
                );
            }
        };
        if matching.is_empty() {
            return reply;
        }
        let found = match answer::addresses(&reply, q) {
            Ok(a) => a,
            Err(e) => {
                return refuse(
                    entry,
                    q,
                    DnsOutcome::Failed,
                    ResponseCode::ServFail,
                    e.to_string(),
                )
            }
        };
        entry.detail = found.code.to_string();
        let admissions = admissions(
            matching.iter().flat_map(|rule| rule.sets.iter()),
            &found.found,
            settings,
        );
        if admissions.is_empty() {
            return reply;
        }
        let started = std::time::Instant::now();
        let admitted = self.admitter.admit(admissions).await;
        entry.admit_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match admitted {
            Ok(()) => {
                entry.outcome = DnsOutcome::Admitted;
                entry.admitted = found.found.iter().map(|(a, _)| a.to_string()).collect();
                reply
            }
            Err(e) => {
                tracing::warn!("DNS for {vm}: {}: {e}", q.name);
                refuse(
                    entry,
                    q,
                    DnsOutcome::Failed,
                    ResponseCode::ServFail,
                    e.to_string(),
                )
            }
        }
    }

    fn domains_of(&self, list: &ShortName) -> Option<Arc<DomainSet>> {
        let meta = self.lists.meta(list).ok()?;
        if meta.domains == 0 {
            return None;
        }
        let mut cache = self.domains.lock().ok()?;
        if let Some((hash, set)) = cache.get(list) {
            if *hash == meta.content_hash {
                return Some(Arc::clone(set));
            }
        }
        let stored = self.lists.load(list).ok()?;
        let set = Arc::new(DomainSet::new(list.clone(), stored.domains));
        tracing::info!("DNS: list {list} blocks {} names", set.len());
        cache.insert(list.clone(), (meta.content_hash, Arc::clone(&set)));
        Some(set)
    }

    fn start_listener(&self, vm: &VmName) -> std::io::Result<listen::Listener> {
        let me = self.me.clone();
        let vm = vm.clone();
        let answerer: listen::Answerer = Arc::new(move |bytes, transport| {
            let (me, vm) = (me.clone(), vm.clone());
            Box::pin(async move {
                let me = me.upgrade()?;
                me.answer(&vm, bytes, transport).await
            })
        });
        listen::start(&answerer)
    }
}

/// The forwarder's own answer to `q`, recorded in `entry`.
fn refuse(
    entry: &mut Entry<'_>,
    q: &Question,
    outcome: DnsOutcome,
    code: ResponseCode,
    detail: String,
) -> Vec<u8> {
    entry.outcome = outcome;
    entry.detail = detail;
    answer::own_answer(q, code)
}

/// The admissions for one answer: each address into every one of `sets` of its family, for
/// max(TTL, floor) + grace. The sets are those of the name rules an asked name matched, or
/// those of a host name the refresher asked.
fn admissions<'s>(
    sets: impl Iterator<Item = &'s (Family, String)> + Clone,
    found: &[(IpAddr, u32)],
    settings: &DnsSettings,
) -> Vec<Admission> {
    let mut out = Vec::new();
    for (address, ttl) in found {
        let family = match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        let seconds = (*ttl).max(settings.ttl_floor_seconds) + settings.grace_seconds;
        for (_, set) in sets.clone().filter(|(f, _)| *f == family) {
            out.push(Admission {
                set: set.clone(),
                address: *address,
                timeout: Duration::from_secs(u64::from(seconds)),
            });
        }
    }
    out
}

impl FollowNames for Forwarder {
    fn forwarder_ports(&self, policy: &Policy, allocate: bool) -> BTreeMap<VmName, u16> {
        let Ok(mut listeners) = self.listeners.lock() else {
            return BTreeMap::new();
        };
        let mut ports = BTreeMap::new();
        for vm in policy.vms.iter().filter(|v| v.dns) {
            if !listeners.contains_key(&vm.name) && allocate {
                match self.start_listener(&vm.name) {
                    Ok(l) => {
                        tracing::info!("DNS of {} is answered on port {}", vm.name, l.port);
                        listeners.insert(vm.name.clone(), l);
                    }
                    // Without its port the VM's DNS is refused, not let out unwatched.
                    Err(e) => tracing::error!("cannot listen for the DNS of {}: {e}", vm.name),
                }
            }
            if let Some(l) = listeners.get(&vm.name) {
                ports.insert(vm.name.clone(), l.port);
            }
        }
        ports
    }

    fn follow(&self, policy: &Policy, ruleset: &Ruleset) {
        let table = names::name_table(policy, ruleset, SystemTime::now(), &mut |list| {
            self.domains_of(list)
        });
        let host_names = self
            .follow_hosts(policy, ruleset)
            .into_iter()
            .map(|n| (HOST.to_owned(), n.to_string(), Vec::new()));
        self.journal.follow(
            table
                .iter()
                .flat_map(|(vm, names)| {
                    names.names.iter().map(move |n| {
                        (
                            vm.to_string(),
                            n.pattern.to_string(),
                            n.rules
                                .iter()
                                .map(|r| u32::try_from(*r).unwrap_or(u32::MAX))
                                .collect(),
                        )
                    })
                })
                .chain(host_names)
                .collect(),
        );
        self.record_resolved();
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.retain(|vm, _| table.contains_key(vm));
        }
        if let Ok(mut cache) = self.domains.lock() {
            cache.retain(|list, _| policy.blocklists.iter().any(|b| &b.name == list));
        }
        let Ok(mut live) = self.live.write() else {
            return;
        };
        if live.settings.upstream != policy.settings.dns.upstream {
            live.upstream = Upstream::new(&policy.settings.dns.upstream)
                .map(|u| {
                    tracing::info!("DNS questions go to {}", u.describe());
                    Arc::new(u)
                })
                .map_err(|e| {
                    tracing::error!("{e}");
                    e.to_string()
                });
        }
        live.settings = Arc::new(policy.settings.dns.clone());
        live.table = Arc::new(table);
    }

    fn resolve<'a>(
        &'a self,
        policy: &'a Policy,
        names: Vec<HostName>,
        deadline: Duration,
    ) -> Resolving<'a> {
        Box::pin(async move {
            let live = self.live.read().ok().and_then(|live| {
                (live.settings.upstream == policy.settings.dns.upstream)
                    .then(|| live.upstream.clone())
            });
            // A policy changing the upstream is resolved through its own, not the old one.
            let upstream = match live {
                Some(u) => u,
                None => Upstream::new(&policy.settings.dns.upstream)
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
            };
            let upstream = match upstream {
                Ok(u) => u,
                Err(why) => {
                    tracing::warn!("cannot resolve the policy's host names: {why}");
                    return HashMap::new();
                }
            };
            let mut out = HashMap::new();
            let mut lookups = tokio::task::JoinSet::new();
            for name in names {
                let upstream = Arc::clone(&upstream);
                lookups.spawn(async move {
                    let found =
                        tokio::time::timeout(deadline, hosts::lookup(&upstream, &name)).await;
                    let answered = match found {
                        Ok(Ok(found)) => Ok(hosts::addresses_of(&found)),
                        Ok(Err(why)) => Err(why),
                        Err(_) => Err(format!("no answer within {} s", deadline.as_secs())),
                    };
                    if let Err(why) = &answered {
                        tracing::info!("{name}: {why}; its rule matches once it answers");
                    }
                    (name, answered)
                });
            }
            while let Some(joined) = lookups.join_next().await {
                if let Ok((name, answered)) = joined {
                    out.insert(name, answered);
                }
            }
            if let Ok(mut resolved) = self.resolved.lock() {
                // A preview resolves too: kept beside the live names until the next install
                // drops what the live policy does not name.
                resolved.extend(out.iter().map(|(n, a)| (n.clone(), a.clone())));
            }
            out.into_iter()
                .map(|(name, answered)| (name, answered.unwrap_or_default().into_iter().collect()))
                .collect()
        })
    }
}
