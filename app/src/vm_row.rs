//! One virtual machine of the live policy as an expander row: a summary line, its settings
//! (disk, memory, CPUs, network, operators, console users), then its rules in order and its
//! default action, each with how often it decided a packet. A VM that a drop-in defines shows a
//! lock and its file under the summary: the whole VM, rules included, comes from that file.
//! A new generation is shown in place ([`VmRowInput::Show`]): only the rule rows whose rule
//! changed change.

use crate::format;
use crate::hits::{self, Hits};
use crate::i18n::{gettext, ni18n_f};
use crate::lock;
use crate::managed::{self, ManagedBy};
use crate::rule_row::{failing_names, name_of, RuleRowInit, RuleRows};
use palisade_dbus::policy::Vm;
use palisade_dbus::types::DnsNameState;
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender};
use relm4::{adw, gtk};
use std::sync::Arc;

/// What a VM row starts with.
#[derive(Debug)]
pub struct VmRowInit {
    /// The VM.
    pub vm: Vm,
    /// Whether the row starts expanded (it was open before a refresh).
    pub expanded: bool,
    /// The states of the names its rules mention.
    pub names: Vec<DnsNameState>,
    /// The drop-in that defines it; `None` for the local policy's.
    pub managed_by: Option<ManagedBy>,
}

/// A read-only VM row.
#[derive(Debug)]
pub struct VmRow {
    /// The VM shown.
    vm: Vm,
    /// Whether the row starts expanded.
    expanded: bool,
    /// The states of the names its rules mention.
    names: Vec<DnsNameState>,
    /// The drop-in that defines it, rules and all; `None` for the local policy's.
    managed_by: Option<ManagedBy>,
    /// The rule rows; made once the expander row exists.
    rules: Option<RuleRows>,
}

/// Messages to a VM row.
#[derive(Debug)]
pub enum VmRowInput {
    /// The time is now this: the rule rows say again how long expiring rules have left.
    Now(std::time::SystemTime),
    /// Show each rule's hits from these counters, read at Unix second `now`.
    Hits {
        /// The counters.
        hits: Arc<Hits>,
        /// When they were read.
        now: u64,
    },
    /// Show this VM, of the same name and lock, as a new generation has it.
    Show(Box<VmRowInit>),
}

/// What a VM row tells the policy view.
#[derive(Debug)]
pub enum VmRowOutput {
    /// The user opened or closed the row; remembered across refreshes.
    Expanded {
        /// The VM's name.
        name: String,
        /// Whether it is open now.
        expanded: bool,
    },
}

impl VmRow {
    /// Whether the row can show `init` in place: the same VM, with the same lock (named for
    /// screen readers when it was made).
    pub fn can_show(&self, init: &VmRowInit) -> bool {
        self.vm.name == init.vm.name && self.managed_by == init.managed_by
    }

    /// The rule rows' contents: the rules in order, then the default action.
    fn rule_rows(&self) -> Vec<RuleRowInit> {
        self.vm
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| RuleRowInit::Rule {
                position: i + 1,
                rule: rule.clone(),
                name: name_of(rule, &self.names),
                managed_by: None,
            })
            .chain([RuleRowInit::Default(self.vm.default_action)])
            .collect()
    }

    /// How the VM reaches the network; a bridged VM's lab network and address.
    fn network(&self) -> String {
        match &self.vm.bridge {
            Some(port) => format::bridged(&port.network, &port.address.to_string()),
            None => format::network(self.vm.network),
        }
    }

    /// How a bridged VM with a NAT address is reached from outside; empty otherwise.
    fn reachable(&self) -> String {
        let Some(nat) = self.vm.bridge.as_ref().and_then(|p| p.nat.as_ref()) else {
            return String::new();
        };
        let forwards: Vec<(&str, u16, u16)> = nat
            .forwards
            .iter()
            .map(|f| (f.proto.as_str(), f.port, f.to_port))
            .collect();
        format::reachable(&nat.address.to_string(), &forwards)
    }

    /// The line under the VM's name.
    fn summary(&self) -> String {
        let vm = &self.vm;
        let rules = ni18n_f(
            "{count} rule",
            "{count} rules",
            format::count(vm.rules.len()),
            &[("count", &vm.rules.len().to_string())],
        );
        let cpus = ni18n_f(
            "{count} CPU",
            "{count} CPUs",
            u32::from(vm.cpus),
            &[("count", &vm.cpus.to_string())],
        );
        let default = format::otherwise(vm.default_action);
        let mut parts = vec![format::memory(vm.memory_mib), cpus, rules, default];
        let failing = failing_names(&vm.rules, &self.names);
        if failing > 0 {
            parts.push(format::names_failing(failing));
        }
        managed::with_caption(&parts.join(" · "), self.managed_by.as_ref())
    }
}

#[relm4::factory(pub)]
impl FactoryComponent for VmRow {
    type Init = VmRowInit;
    type Input = VmRowInput;
    type Output = VmRowOutput;
    type CommandOutput = ();
    type ParentWidget = adw::PreferencesGroup;

    view! {
        #[root]
        adw::ExpanderRow {
            set_use_markup: false,
            set_title: self.vm.name.as_str(),
            #[watch]
            set_subtitle: &self.summary(),
            set_expanded: self.expanded,
            add_prefix = &gtk::Image {
                set_icon_name: Some("computer-symbolic"),
            },
            add_action = &lock::icon(self.managed_by.as_ref()),
            connect_expanded_notify[sender, name = self.vm.name.to_string()] => move |row| {
                sender.output_sender().emit(VmRowOutput::Expanded {
                    name: name.clone(),
                    expanded: row.is_expanded(),
                });
            },

            add_row = &adw::ActionRow {
                set_title: &gettext("Disk image"),
                add_suffix = &gtk::Label {
                    #[watch]
                    set_label: self.vm.disk.as_str(),
                    set_selectable: true,
                    add_css_class: "dim-label",
                },
            },
            add_row = &adw::ActionRow {
                set_title: &gettext("Memory"),
                add_suffix = &gtk::Label {
                    #[watch]
                    set_label: &format::memory(self.vm.memory_mib),
                    add_css_class: "dim-label",
                },
            },
            add_row = &adw::ActionRow {
                set_title: &gettext("CPUs"),
                add_suffix = &gtk::Label {
                    #[watch]
                    set_label: &self.vm.cpus.to_string(),
                    add_css_class: "dim-label",
                },
            },
            add_row = &adw::ActionRow {
                set_title: &gettext("Network"),
                set_use_markup: false,
                #[watch]
                set_subtitle: &self.reachable(),
                add_suffix = &gtk::Label {
                    #[watch]
                    set_label: &self.network(),
                    set_wrap: true,
                    add_css_class: "dim-label",
                },
            },
            add_row = &adw::ActionRow {
                set_title: &gettext("May start and stop it"),
                set_use_markup: false,
                #[watch]
                set_subtitle: &format::access(&self.vm.operators),
            },
            add_row = &adw::ActionRow {
                set_title: &gettext("May open its console"),
                set_use_markup: false,
                #[watch]
                set_subtitle: &format::access(&self.vm.console),
            },
            add_row = &adw::ActionRow {
                set_title: &gettext("Rules"),
                set_subtitle: &gettext("In order: the first rule that matches decides"),
            },
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        VmRow {
            vm: init.vm,
            expanded: init.expanded,
            names: init.names,
            managed_by: init.managed_by,
            rules: None,
        }
    }

    fn init_widgets(
        &mut self,
        _index: &DynamicIndex,
        root: Self::Root,
        _returned_widget: &gtk::Widget,
        sender: FactorySender<Self>,
    ) -> Self::Widgets {
        let widgets = view_output!();
        // The rules follow the settings inside the same expander row, in their matching order.
        let mut rules = RuleRows::new(root.clone());
        rules.show(self.rule_rows());
        self.rules = Some(rules);
        widgets
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {
            VmRowInput::Show(init) => {
                self.vm = init.vm;
                self.names = init.names;
                let inits = self.rule_rows();
                if let Some(rows) = &mut self.rules {
                    rows.show(inits);
                }
            }
            VmRowInput::Now(now) => {
                if let Some(rows) = &mut self.rules {
                    rows.now(now);
                }
            }
            VmRowInput::Hits { hits, now } => {
                let Some(rows) = &mut self.rules else {
                    return;
                };
                let name = self.vm.name.as_str();
                let words =
                    |c: Option<&palisade_dbus::types::RuleCounter>| c.map(|c| hits::text(c, now));
                for position in 1..=self.vm.rules.len() {
                    rows.set_hits(position - 1, words(hits.vm_rule(name, position)));
                }
                // The default row closes the list.
                rows.set_hits(self.vm.rules.len(), words(hits.vm_default(name)));
            }
        }
    }
}
