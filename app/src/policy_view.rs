//! The live policy, read-only: problems validation found in it, each VM with its settings and
//! ordered rules, the host-wide rules, the remote consoles and the blocklists. Rules naming a
//! host or a wildcard show that name's state (`Dns.Names`).

use crate::console_row::ConsoleRow;
use crate::format;
use crate::i18n::{gettext, i18n_f, ni18n_f};
use crate::info_row::{InfoRow, InfoRowInit};
use crate::rule_row::{failing_names, name_of, RuleRow, RuleRowInit};
use crate::vm_row::{VmRow, VmRowInit, VmRowOutput};
use palisade_dbus::policy::Policy;
use palisade_dbus::types::{DnsNameState, Finding, Severity};
use relm4::adw::prelude::*;
use relm4::factory::FactoryVecDeque;
use relm4::{adw, gtk, ComponentParts, ComponentSender, SimpleComponent};
use std::collections::HashSet;

/// The owner the helper gives the names it resolves itself (host-wide rules, remote consoles,
/// VMs without the forwarder).
const HOST_NAMES: &str = "host";

/// Shows one generation of the policy.
pub struct PolicyView {
    /// The generation shown; `None` when no policy is shown.
    generation: Option<u64>,
    /// Whether the findings are errors (the document did not validate here) or warnings.
    unreadable: bool,
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
}

impl PolicyView {
    fn description(&self) -> String {
        match self.generation {
            Some(0) => gettext("No policy has been applied yet"),
            Some(g) => i18n_f(
                "The live policy, generation {generation}",
                &[("generation", &g.to_string())],
            ),
            None => String::new(),
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
            });
        }
    }

    fn show(&mut self, policy: Policy, names: &[DnsNameState]) {
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
            });
        }
        drop(host);

        let mut consoles = self.consoles.guard();
        consoles.clear();
        for console in policy.remote_consoles {
            consoles.push_back(console);
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
            });
        }
    }

    fn clear(&mut self) {
        self.vms.guard().clear();
        self.host_rules.guard().clear();
        self.host_names_failing = 0;
        self.consoles.guard().clear();
        self.blocklists.guard().clear();
    }
}

#[relm4::component(pub)]
impl SimpleComponent for PolicyView {
    type Init = ();
    type Input = PolicyViewInput;
    type Output = ();

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
        };
        let findings_group = model.findings.widget();
        let vm_group = model.vms.widget();
        let host_expander = model.host_rules.widget();
        let console_group = model.consoles.widget();
        let blocklist_group = model.blocklists.widget();
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }

    fn update(&mut self, message: Self::Input, _sender: ComponentSender<Self>) {
        match message {
            PolicyViewInput::Show {
                generation,
                policy,
                warnings,
                names,
            } => {
                self.generation = Some(generation);
                self.unreadable = false;
                self.set_findings(&warnings);
                self.show(*policy, &names);
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
        }
    }
}
