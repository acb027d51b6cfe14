//! The live policy, read-only: problems validation found in it, each VM with its settings and
//! ordered rules, the host-wide rules, the remote consoles and the blocklists. Rules naming a
//! host or a wildcard show that name's state (`Dns.Names`), and every rule how often it decided a
//! packet (`Log.Counters`). A VM, host rule, remote console or blocklist that a drop-in defines
//! rather than the local policy shows a lock and its file ("Managed by your organisation
//! (50-office.toml)"), and its row keeps that file (`managed_by`) for whatever edits the rest.
//!
//! The view owns its calls: the window hands it the bus connection each time it reads the
//! helper, and the view reads the live policy's files (`Policy.Sources`, merged here as the
//! helper merges them; `Policy.Get` from a helper without drop-ins) and the names' states
//! (`Dns.Names`), then the rules' counters (`Log.Counters`), again when the Firewall page is
//! opened and every [`COUNTERS_EVERY`] while a policy is shown. A user who may not read the log
//! sees the rules without hits, and is not asked again until the window reads the helper again.
//! Sentences for the user, a refusal and the remote consoles (for the Activity page's snippets)
//! go to the window through [`PolicyViewOutput`].

use crate::activity::RemoteConsoleHint;
use crate::console_row::{ConsoleRow, ConsoleRowInit};
use crate::format;
use crate::hits::{self, Hits};
use crate::i18n::{gettext, i18n_f, ni18n_f};
use crate::info_row::{InfoRow, InfoRowInit};
use crate::managed::Managed;
use crate::policy_editor::{PolicyEditor, PolicyEditorInput, PolicyEditorOutput};
use crate::rule_row::{failing_names, name_of, RuleRowInit, RuleRows};
use crate::vm_row::{VmRow, VmRowInit, VmRowInput, VmRowOutput};
use palisade_dbus::policy::merge::merge;
use palisade_dbus::policy::{Parsed, Policy};
use palisade_dbus::proxy::{DnsProxy, LogProxy, PolicyProxy};
use palisade_dbus::types::{
    DnsNameState, Finding, PolicySource, PolicySources, RuleCounter, Severity, SourceKind,
};
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::factory::FactoryVecDeque;
use relm4::{
    adw, gtk, Component, ComponentController, ComponentParts, ComponentSender, Controller,
    ShutdownReceiver,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the rules' hits are read again while a policy is shown.
const COUNTERS_EVERY: Duration = Duration::from_secs(10);

/// The owner the helper gives the names it resolves itself (host-wide rules, remote consoles,
/// VMs without the forwarder).
const HOST_NAMES: &str = "host";

/// Shows one generation of the policy.
pub struct PolicyView {
    /// The generation shown; `None` when no policy is shown.
    generation: Option<u64>,
    /// Whether the findings are errors (the document did not validate here) or warnings.
    unreadable: bool,
    /// Whether a part shown comes from a drop-in (then the description explains the locks).
    managed: bool,
    /// Names of the VMs whose rows the user opened, kept open across refreshes.
    expanded: HashSet<String>,
    /// Validation findings about the live document.
    findings: FactoryVecDeque<InfoRow>,
    /// One row per VM.
    vms: FactoryVecDeque<VmRow>,
    /// The rules for every local process.
    host_rules: RuleRows,
    /// How many of them name a host that is not answering.
    host_names_failing: usize,
    /// The remote consoles.
    consoles: FactoryVecDeque<ConsoleRow>,
    /// The blocklists, with their sizes.
    blocklists: FactoryVecDeque<InfoRow>,
    /// The window's bus connection, once it has one.
    connection: Option<zbus::Connection>,
    /// Whether a read of the policy is under way.
    loading: bool,
    /// Whether another read of the policy was asked for while one was under way.
    reload_queued: bool,
    /// The counters last read, shown on the rule rows.
    hits: Option<Arc<Hits>>,
    /// Whether a read of the counters is under way.
    reading: bool,
    /// Whether the helper refused this user the counters (then they are not asked for again
    /// until the window reads the helper again).
    hits_refused: bool,
    /// The editor of the local policy, for users who may manage it.
    editor: Controller<PolicyEditor>,
}

impl std::fmt::Debug for PolicyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyView")
            .field("generation", &self.generation)
            .field("vms", &self.vms.len())
            .finish_non_exhaustive()
    }
}

/// Messages to the policy view.
#[derive(Debug)]
pub enum PolicyViewInput {
    /// Read the live policy and its names' states over this connection, then the rules'
    /// counters (the window read the helper again).
    Load(zbus::Connection),
    /// Show no policy: it could not be read, or this user may not read it.
    Clear,
    /// A VM row was opened or closed by the user.
    VmExpanded {
        /// The VM's name.
        name: String,
        /// Whether its row is open now.
        expanded: bool,
    },
    /// Read the rules' counters now (the Firewall page was opened).
    ReadHits,
}

/// What the policy view asks the window to do.
#[derive(Debug)]
pub enum PolicyViewOutput {
    /// Show this sentence as a toast.
    Toast(String),
    /// The helper does not let this user read the policy; its sentence.
    Refused(String),
    /// The live policy's remote consoles, for the Activity page's snippets.
    Consoles(Vec<RemoteConsoleHint>),
    /// The editor changed the helper's state without a new generation (a confirmed one): read
    /// the helper again.
    Changed,
}

/// Results of the view's calls and timer.
#[derive(Debug)]
pub enum PolicyViewCmd {
    /// The live policy and its names' states were read, or could not be.
    Loaded {
        /// `Sources()`, merged and parsed.
        policy: Box<Result<LivePolicy, Error>>,
        /// `Dns.Names()`: the states of the names the rules mention.
        names: Result<Vec<DnsNameState>, Error>,
    },
    /// `Log.Counters("")` answered.
    Counters {
        /// The generation shown when the read started: counters of another one may not fit
        /// the rows (rules are numbered by their place).
        generation: Option<u64>,
        /// The counters, or why not.
        result: Result<Vec<RuleCounter>, Error>,
    },
    /// Time to read the counters again.
    Tick,
}

/// The live policy: its files merged as the helper merges them, parsed with the contract's
/// validation.
#[derive(Debug)]
pub struct LivePolicy {
    /// Its generation.
    generation: u64,
    /// The policy, or why this app could not read it.
    parsed: Result<Parsed, Vec<Finding>>,
    /// Which of its parts come from drop-ins rather than the local policy.
    managed: Managed,
}

/// Reads the policy and the states of its names at once.
async fn load(connection: zbus::Connection) -> PolicyViewCmd {
    let names = async { DnsProxy::new(&connection).await?.names().await };
    let (policy, names) = tokio::join!(read_policy(&connection), names);
    PolicyViewCmd::Loaded {
        policy: Box::new(policy),
        names,
    }
}

/// Reads the files of the live policy (`Sources`: the drop-ins, then the local policy) and
/// merges them as the helper does, remembering which part came from which file. A helper from
/// before drop-ins has no `Sources`; its `Get` is the whole policy.
async fn read_policy(connection: &zbus::Connection) -> Result<LivePolicy, Error> {
    let proxy = PolicyProxy::new(connection).await?;
    let sources = match proxy.sources().await {
        Ok(sources) => sources,
        Err(Error::ZBus(zbus::Error::MethodError(name, _, _)))
            if name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod" =>
        {
            let (generation, document) = proxy.get().await?;
            PolicySources {
                generation,
                sources: vec![PolicySource {
                    name: String::new(),
                    kind: SourceKind::Local,
                    path: String::new(),
                    document,
                }],
                admin_dir: String::new(),
                vendor_dir: String::new(),
                local_file: String::new(),
            }
        }
        Err(e) => return Err(e),
    };
    let generation = sources.generation;
    // A policy can hold a million blocklist entries: merge and parse it off the async workers.
    let (parsed, managed) = tokio::task::spawn_blocking(move || {
        let merged = match merge(&sources.sources) {
            Ok(merged) => merged,
            // The helper merged these files; an app that cannot is older or newer than it.
            Err(findings) => return (Err(findings), Managed::default()),
        };
        match Policy::parse(merged.document.as_bytes()) {
            Ok(mut parsed) => {
                let managed = Managed::new(&merged, &parsed.policy);
                // Warnings about a drop-in name its file: it is not changed here.
                parsed.warnings = merged.attribute(std::mem::take(&mut parsed.warnings));
                (Ok(parsed), managed)
            }
            Err(findings) => (Err(merged.attribute(findings)), Managed::default()),
        }
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(LivePolicy {
        generation,
        parsed,
        managed,
    })
}

/// The remote consoles of `policy`, for the Activity page's snippets.
fn remote_consoles(policy: &Policy) -> Vec<RemoteConsoleHint> {
    policy
        .remote_consoles
        .iter()
        .map(|c| RemoteConsoleHint {
            name: c.name.to_string(),
            host: c.host.to_string(),
            port: c.port,
            users: c
                .access
                .users
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
        })
        .collect()
}

async fn read_counters(connection: zbus::Connection, generation: Option<u64>) -> PolicyViewCmd {
    let result = async { LogProxy::new(&connection).await?.counters("").await }.await;
    PolicyViewCmd::Counters { generation, result }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PolicyView {
    /// The Access page, which the editor fills (one draft for both pages).
    pub fn access_page(&self) -> gtk::ScrolledWindow {
        self.editor.model().access_page()
    }

    fn description(&self) -> String {
        let live = match self.generation {
            Some(0) => gettext("No policy has been applied yet"),
            Some(g) => i18n_f(
                "The live policy, generation {generation}",
                &[("generation", &g.to_string())],
            ),
            None => String::new(),
        };
        if self.managed {
            format!(
                "{live}\n{}",
                // Translators: under the list of VMs when parts of the policy come from
                // drop-in files (/etc/palisade/policy.d, /usr/lib/palisade/policy.d).
                gettext("Parts with a lock come from other files and cannot be changed here")
            )
        } else {
            live
        }
    }

    fn empty_title(&self) -> String {
        if self.unreadable {
            gettext("The live policy cannot be shown")
        } else if self.generation.is_some() {
            gettext("No virtual machines")
        } else {
            gettext("The policy is not available")
        }
    }

    fn empty_subtitle(&self) -> String {
        if self.unreadable {
            gettext("See the problems above")
        } else if self.generation.is_some() {
            gettext("The live policy defines none")
        } else {
            gettext("Refresh to try again")
        }
    }

    fn findings_title(&self) -> String {
        if self.unreadable {
            gettext("This version of the app cannot read the live policy")
        } else {
            gettext("Warnings about the live policy")
        }
    }

    fn host_rules_summary(&self) -> String {
        let rules = ni18n_f(
            "{count} rule, checked before any VM's own rules",
            "{count} rules, checked before any VM's own rules",
            format::count(self.host_rules.len()),
            &[("count", &self.host_rules.len().to_string())],
        );
        if self.host_names_failing == 0 {
            return rules;
        }
        format!(
            "{rules} · {}",
            format::names_failing(self.host_names_failing)
        )
    }

    fn set_findings(&mut self, findings: &[Finding]) {
        let mut guard = self.findings.guard();
        guard.clear();
        for f in findings {
            guard.push_back(InfoRowInit {
                title: f.path.clone(),
                subtitle: f.message.clone(),
                icon: Some(match f.severity {
                    Severity::Error => "dialog-error-symbolic",
                    Severity::Warning => "dialog-warning-symbolic",
                }),
                managed_by: None,
            });
        }
    }

    fn show(&mut self, policy: Policy, names: &[DnsNameState], managed: &Managed) {
        self.managed = managed.any();
        let of = |owner: &str| -> Vec<DnsNameState> {
            names.iter().filter(|n| n.vm == owner).cloned().collect()
        };
        let inits: Vec<VmRowInit> = policy
            .vms
            .into_iter()
            .map(|vm| {
                let expanded = self.expanded.contains(vm.name.as_str());
                // A VM without the forwarder has its names resolved by the helper, as the
                // host's.
                let names = of(if vm.dns { vm.name.as_str() } else { HOST_NAMES });
                VmRowInit {
                    managed_by: managed.vm(vm.name.as_str()),
                    vm,
                    expanded,
                    names,
                }
            })
            .collect();
        let mut vms = self.vms.guard();
        // The same VMs are shown again in place: a policy with a thousand rules is not
        // made again row by row for every generation (see rule_row).
        let same = vms.len() == inits.len()
            && inits
                .iter()
                .enumerate()
                .all(|(i, init)| vms.get(i).is_some_and(|row| row.can_show(init)));
        if same {
            for (i, init) in inits.into_iter().enumerate() {
                vms.send(i, VmRowInput::Show(Box::new(init)));
            }
        } else {
            vms.clear();
            for init in inits {
                vms.push_back(init);
            }
        }
        drop(vms);

        let host_names = of(HOST_NAMES);
        self.host_names_failing = failing_names(&policy.host_rules, &host_names);
        let host: Vec<RuleRowInit> = policy
            .host_rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| RuleRowInit::Rule {
                position: i + 1,
                name: name_of(&rule, &host_names),
                rule,
                managed_by: managed.host_rule(i + 1),
            })
            .collect();
        self.host_rules.show(host);

        let mut consoles = self.consoles.guard();
        consoles.clear();
        for console in policy.remote_consoles {
            consoles.push_back(ConsoleRowInit {
                managed_by: managed.console(console.name.as_str()),
                console,
            });
        }
        drop(consoles);

        let mut blocklists = self.blocklists.guard();
        blocklists.clear();
        for list in policy.blocklists {
            let n = list.entries.len();
            let subtitle = if list.imported {
                // Translators: a blocklist whose contents were imported on their own
                // (palisadectl blocklist import), not written in the policy.
                gettext("Imported list")
            } else {
                ni18n_f(
                    "{count} network",
                    "{count} networks",
                    format::count(n),
                    &[("count", &n.to_string())],
                )
            };
            blocklists.push_back(InfoRowInit {
                title: list.name.to_string(),
                subtitle,
                icon: None,
                managed_by: managed.blocklist(list.name.as_str()),
            });
        }
    }

    /// Starts a read of the counters, unless one is under way or they were refused.
    fn read_hits(&mut self, sender: &ComponentSender<Self>) {
        let Some(connection) = self.connection.clone() else {
            return;
        };
        if self.reading || self.hits_refused || self.unreadable || self.generation.is_none() {
            return;
        }
        self.reading = true;
        sender.oneshot_command(read_counters(connection, self.generation));
    }

    /// Shows the counters last read on every rule row.
    fn show_hits(&mut self) {
        let Some(hits) = &self.hits else {
            return;
        };
        let now = unix_now();
        for i in 0..self.vms.len() {
            self.vms.send(
                i,
                VmRowInput::Hits {
                    hits: Arc::clone(hits),
                    now,
                },
            );
        }
        for i in 0..self.host_rules.len() {
            let words = hits.host_rule(i + 1).map(|c| hits::text(c, now));
            self.host_rules.set_hits(i, words);
        }
    }

    /// Reads the policy, unless a read is under way (then once more after it).
    fn load(&mut self, sender: &ComponentSender<Self>) {
        let Some(connection) = self.connection.clone() else {
            return;
        };
        if self.loading {
            self.reload_queued = true;
            return;
        }
        self.loading = true;
        sender.oneshot_command(load(connection));
    }

    /// Shows what a read of the policy returned.
    fn loaded(
        &mut self,
        policy: Result<LivePolicy, Error>,
        names: Result<Vec<DnsNameState>, Error>,
        sender: &ComponentSender<Self>,
    ) {
        match policy {
            Ok(LivePolicy {
                generation,
                parsed: Ok(parsed),
                managed,
            }) => {
                sender
                    .output_sender()
                    .emit(PolicyViewOutput::Consoles(remote_consoles(&parsed.policy)));
                self.generation = Some(generation);
                self.unreadable = false;
                self.set_findings(&parsed.warnings);
                // Without them the rows show the rules alone: nothing else depends on them.
                self.show(parsed.policy, &names.unwrap_or_default(), &managed);
                // The counters read were the old generation's; the new ones come with the next
                // read.
                self.hits = None;
                self.hits_refused = false;
                self.read_hits(sender);
            }
            Ok(LivePolicy {
                generation,
                parsed: Err(findings),
                ..
            }) => {
                sender.output_sender().emit(PolicyViewOutput::Toast(gettext(
                    "The live policy does not validate in this version of the app",
                )));
                self.generation = Some(generation);
                self.unreadable = true;
                self.set_findings(&findings);
                self.clear();
            }
            Err(Error::NotAuthorized(reason)) => {
                sender
                    .output_sender()
                    .emit(PolicyViewOutput::Refused(reason));
                self.clear_all();
            }
            Err(e) => {
                sender
                    .output_sender()
                    .emit(PolicyViewOutput::Toast(e.sentence()));
                self.clear_all();
            }
        }
    }

    /// Shows no policy and no findings.
    fn clear_all(&mut self) {
        self.generation = None;
        self.unreadable = false;
        self.set_findings(&[]);
        self.clear();
    }

    /// Removes the rows.
    fn clear(&mut self) {
        self.hits = None;
        self.managed = false;
        self.vms.guard().clear();
        self.host_rules.clear();
        self.host_names_failing = 0;
        self.consoles.guard().clear();
        self.blocklists.guard().clear();
    }
}

#[relm4::component(pub)]
impl Component for PolicyView {
    type Init = ();
    type Input = PolicyViewInput;
    type Output = PolicyViewOutput;
    type CommandOutput = PolicyViewCmd;

    view! {
        gtk::Box {
            set_orientation: gtk::Orientation::Vertical,
            set_spacing: 24,

            #[local_ref]
            editor -> gtk::Box {},

            #[local_ref]
            findings_group -> adw::PreferencesGroup {
                #[watch]
                set_title: &model.findings_title(),
                #[watch]
                set_visible: !model.findings.is_empty(),
            },

            #[local_ref]
            vm_group -> adw::PreferencesGroup {
                set_title: &gettext("Virtual machines"),
                #[watch]
                set_description: Some(&model.description()),

                add = &adw::ActionRow {
                    #[watch]
                    set_title: &model.empty_title(),
                    #[watch]
                    set_subtitle: &model.empty_subtitle(),
                    #[watch]
                    set_visible: model.vms.is_empty(),
                },
            },

            adw::PreferencesGroup {
                set_title: &gettext("Host"),
                #[watch]
                set_visible: !model.host_rules.is_empty(),

                #[local_ref]
                add = host_expander -> adw::ExpanderRow {
                    set_title: &gettext("Rules for every local process"),
                    #[watch]
                    set_subtitle: &model.host_rules_summary(),
                    add_prefix = &gtk::Image {
                        set_icon_name: Some("security-high-symbolic"),
                    },
                },
            },

            #[local_ref]
            console_group -> adw::PreferencesGroup {
                set_title: &gettext("Remote consoles"),
                set_description: Some(&gettext("Spice servers on other hosts, and who may connect to them")),
                #[watch]
                set_visible: !model.consoles.is_empty(),
            },

            #[local_ref]
            blocklist_group -> adw::PreferencesGroup {
                set_title: &gettext("Blocklists"),
                set_description: Some(&gettext("Named sets of networks that rules refer to")),
                #[watch]
                set_visible: !model.blocklists.is_empty(),
            },
        }
    }

    fn init(
        _init: Self::Init,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = PolicyView {
            generation: None,
            unreadable: false,
            managed: false,
            expanded: HashSet::new(),
            findings: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .detach(),
            vms: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .forward(sender.input_sender(), |out| match out {
                    VmRowOutput::Expanded { name, expanded } => {
                        PolicyViewInput::VmExpanded { name, expanded }
                    }
                }),
            host_rules: RuleRows::new(adw::ExpanderRow::default()),
            host_names_failing: 0,
            consoles: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .detach(),
            blocklists: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .detach(),
            connection: None,
            loading: false,
            reload_queued: false,
            hits: None,
            reading: false,
            hits_refused: false,
            editor: PolicyEditor::builder()
                .launch(())
                .forward(sender.output_sender(), |out| match out {
                    PolicyEditorOutput::Toast(sentence) => PolicyViewOutput::Toast(sentence),
                    PolicyEditorOutput::Changed => PolicyViewOutput::Changed,
                }),
        };
        sender.command(|out, shutdown: ShutdownReceiver| {
            shutdown
                .register(async move {
                    let mut ticks = tokio::time::interval(COUNTERS_EVERY);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticks.tick().await;
                        out.emit(PolicyViewCmd::Tick);
                    }
                })
                .drop_on_shutdown()
        });
        let editor = model.editor.widget().clone();
        let findings_group = model.findings.widget();
        let vm_group = model.vms.widget();
        let host_expander = model.host_rules.widget();
        let console_group = model.consoles.widget();
        let blocklist_group = model.blocklists.widget();
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, sender: ComponentSender<Self>, _root: &Self::Root) {
        match message {
            PolicyViewInput::Load(connection) => {
                self.editor
                    .emit(PolicyEditorInput::Load(connection.clone()));
                self.connection = Some(connection);
                self.load(&sender);
            }
            PolicyViewInput::Clear => {
                self.connection = None;
                self.editor.emit(PolicyEditorInput::Clear);
                self.clear_all();
            }
            PolicyViewInput::VmExpanded { name, expanded } => {
                if expanded {
                    self.expanded.insert(name);
                } else {
                    self.expanded.remove(&name);
                }
            }
            PolicyViewInput::ReadHits => {
                self.hits_refused = false;
                self.read_hits(&sender);
            }
        }
    }

    fn update_cmd(
        &mut self,
        message: Self::CommandOutput,
        sender: ComponentSender<Self>,
        _root: &Self::Root,
    ) {
        match message {
            PolicyViewCmd::Loaded { policy, names } => {
                self.loading = false;
                // Read before the window found the helper gone or refusing: it does not count.
                if self.connection.is_some() {
                    self.loaded(*policy, names, &sender);
                }
                if std::mem::take(&mut self.reload_queued) {
                    self.load(&sender);
                }
            }
            PolicyViewCmd::Tick => {
                // Expiring rules say again how long they have left (the tick comes every
                // few seconds; a minute's words need no more).
                let now = SystemTime::now();
                for i in 0..self.vms.len() {
                    self.vms.send(i, VmRowInput::Now(now));
                }
                self.host_rules.now(now);
                self.read_hits(&sender);
            }
            PolicyViewCmd::Counters { generation, result } => {
                self.reading = false;
                if generation != self.generation {
                    // Read for rows that are gone; read again for these.
                    self.read_hits(&sender);
                    return;
                }
                match result {
                    Ok(counters) => {
                        self.hits = Some(Arc::new(Hits::new(counters)));
                        self.show_hits();
                    }
                    Err(Error::NotAuthorized(_)) => self.hits_refused = true,
                    // Not worth a toast every few seconds: the rules show without their hits.
                    Err(e) => eprintln!(
                        "palisade: cannot read the rules' counters: {}",
                        e.sentence()
                    ),
                }
            }
        }
    }
}
