//! The live policy, read-only: problems validation found in it, each VM with its settings and
//! ordered rules, the host-wide rules, the remote consoles and the blocklists. Rules naming a
//! host or a wildcard show that name's state (`Dns.Names`), and every rule how often it decided a
//! packet (`Log.Counters`). A VM, host rule, remote console or blocklist that a drop-in defines
//! rather than the local policy shows a lock and its file ("Managed by your organisation
//! (50-office.toml)"), and its row keeps that file (`managed_by`) for whatever edits the rest.
//!
//! The counters are the view's own call: the window hands it the bus connection whenever it
//! shows a policy or the Firewall page is opened, and the view reads them again every
//! [`COUNTERS_EVERY`] while a policy is shown. A user who may not read the log sees the rules
//! without hits, and is not asked again until the window reads the helper again.

use crate::console_row::{ConsoleRow, ConsoleRowInit};
use crate::format;
use crate::hits::{self, Hits};
use crate::i18n::{gettext, i18n_f, ni18n_f};
use crate::info_row::{InfoRow, InfoRowInit};
use crate::managed::Managed;
use crate::rule_row::{failing_names, name_of, RuleRow, RuleRowInit, RuleRowInput};
use crate::vm_row::{VmRow, VmRowInit, VmRowInput, VmRowOutput};
use palisade_dbus::policy::Policy;
use palisade_dbus::proxy::LogProxy;
use palisade_dbus::types::{DnsNameState, Finding, RuleCounter, Severity};
use palisade_dbus::Error;
use relm4::adw::prelude::*;
use relm4::factory::FactoryVecDeque;
use relm4::{adw, gtk, Component, ComponentParts, ComponentSender, ShutdownReceiver};
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
    host_rules: FactoryVecDeque<RuleRow>,
    /// How many of them name a host that is not answering.
    host_names_failing: usize,
    /// The remote consoles.
    consoles: FactoryVecDeque<ConsoleRow>,
    /// The blocklists, with their sizes.
    blocklists: FactoryVecDeque<InfoRow>,
    /// The window's bus connection, for reading the counters.
    connection: Option<zbus::Connection>,
    /// The counters last read, shown on the rule rows.
    hits: Option<Arc<Hits>>,
    /// Whether a read of the counters is under way.
    reading: bool,
    /// Whether the helper refused this user the counters (then they are not asked for again
    /// until the window reads the helper again).
    hits_refused: bool,
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
    /// Show this policy, live at this generation, with the warnings validation gave.
    Show {
        /// The live generation.
        generation: u64,
        /// The policy.
        policy: Box<Policy>,
        /// Warnings about it (shadowed rules, empty assignments, ...).
        warnings: Vec<Finding>,
        /// Which of its parts drop-ins define.
        managed: Box<Managed>,
        /// The states of the names its rules mention (empty when they cannot be read).
        names: Vec<DnsNameState>,
    },
    /// The live document did not validate in this app (it is older or newer than the helper).
    Unreadable {
        /// The live generation.
        generation: u64,
        /// What validation found.
        findings: Vec<Finding>,
    },
    /// Show no policy: it could not be read.
    Clear,
    /// A VM row was opened or closed by the user.
    VmExpanded {
        /// The VM's name.
        name: String,
        /// Whether its row is open now.
        expanded: bool,
    },
    /// Read the rules' counters now, over this connection (a policy was shown, or the page
    /// opened).
    ReadHits(zbus::Connection),
}

/// Results of the view's calls and timer.
#[derive(Debug)]
pub enum PolicyViewCmd {
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
        let mut vms = self.vms.guard();
        vms.clear();
        for vm in policy.vms {
            let expanded = self.expanded.contains(vm.name.as_str());
            // A VM without the forwarder has its names resolved by the helper, as the host's.
            let names = of(if vm.dns { vm.name.as_str() } else { HOST_NAMES });
            vms.push_back(VmRowInit {
                managed_by: managed.vm(vm.name.as_str()),
                vm,
                expanded,
                names,
            });
        }
        drop(vms);

        let host_names = of(HOST_NAMES);
        self.host_names_failing = failing_names(&policy.host_rules, &host_names);
        let mut host = self.host_rules.guard();
        host.clear();
        for (i, rule) in policy.host_rules.into_iter().enumerate() {
            let name = name_of(&rule, &host_names);
            host.push_back(RuleRowInit::Rule {
                position: i + 1,
                rule,
                name,
                managed_by: managed.host_rule(i + 1),
            });
        }
        drop(host);

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
        if self.reading || self.hits_refused || self.generation.is_none() {
            return;
        }
        self.reading = true;
        sender.oneshot_command(read_counters(connection, self.generation));
    }

    /// Shows the counters last read on every rule row.
    fn show_hits(&self) {
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
            self.host_rules.send(i, RuleRowInput::Hits(words));
        }
    }

    fn clear(&mut self) {
        self.connection = None;
        self.hits = None;
        self.managed = false;
        self.vms.guard().clear();
        self.host_rules.guard().clear();
        self.host_names_failing = 0;
        self.consoles.guard().clear();
        self.blocklists.guard().clear();
    }
}

#[relm4::component(pub)]
impl Component for PolicyView {
    type Init = ();
    type Input = PolicyViewInput;
    type Output = ();
    type CommandOutput = PolicyViewCmd;

    view! {
        gtk::Box {
            set_orientation: gtk::Orientation::Vertical,
            set_spacing: 24,

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
            host_rules: FactoryVecDeque::builder()
                .launch(adw::ExpanderRow::default())
                .detach(),
            host_names_failing: 0,
            consoles: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .detach(),
            blocklists: FactoryVecDeque::builder()
                .launch(adw::PreferencesGroup::default())
                .detach(),
            connection: None,
            hits: None,
            reading: false,
            hits_refused: false,
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
            PolicyViewInput::Show {
                generation,
                policy,
                warnings,
                managed,
                names,
            } => {
                self.generation = Some(generation);
                self.unreadable = false;
                self.set_findings(&warnings);
                self.show(*policy, &names, &managed);
                // The rows are new; their hits come with the next read, which the window asks
                // for with the policy.
                self.hits = None;
            }
            PolicyViewInput::Unreadable {
                generation,
                findings,
            } => {
                self.generation = Some(generation);
                self.unreadable = true;
                self.set_findings(&findings);
                self.clear();
            }
            PolicyViewInput::Clear => {
                self.generation = None;
                self.unreadable = false;
                self.set_findings(&[]);
                self.clear();
            }
            PolicyViewInput::VmExpanded { name, expanded } => {
                if expanded {
                    self.expanded.insert(name);
                } else {
                    self.expanded.remove(&name);
                }
            }
            PolicyViewInput::ReadHits(connection) => {
                self.connection = Some(connection);
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
            PolicyViewCmd::Tick => self.read_hits(&sender),
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
