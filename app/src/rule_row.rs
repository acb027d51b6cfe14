//! One firewall rule as a row: its position, a coloured verdict badge, the destination, and the
//! protocol, ports, expiry, logging and comment underneath, and for a rule naming a host or a
//! wildcard the state of that name (its last answer's addresses, or why it fails). Also the
//! closing "anything else" row that shows a VM's default action. Each row also says how often
//! its rule decided a packet, once the policy view has read the helper's counters. A host rule
//! that a drop-in defines shows a lock and its file.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use crate::lock;
use crate::managed::{self, ManagedBy};
use palisade_dbus::policy::{Rule, Verdict};
use palisade_dbus::types::DnsNameState;
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender};
use relm4::{adw, gtk};
use std::time::SystemTime;

/// What a rule row shows.
#[derive(Debug)]
pub enum RuleRowInit {
    /// A rule at its 1-based position in the ordered list.
    Rule {
        /// Where it stands: rules are matched in order, first match wins.
        position: usize,
        /// The rule.
        rule: Rule,
        /// The state of the name its destination names, when it names one.
        name: Option<Box<DnsNameState>>,
        /// The drop-in that defines it, when that is not the local policy. A VM's rules leave
        /// it `None`: their VM's row says where the whole VM comes from.
        managed_by: Option<ManagedBy>,
    },
    /// What happens to traffic no rule matched.
    Default(Verdict),
}

/// A read-only rule row.
#[derive(Debug)]
pub struct RuleRow {
    /// The number in front, empty for the default row.
    position: String,
    /// The verdict badge's text.
    verdict: String,
    /// The verdict badge's style class.
    verdict_css: &'static str,
    /// The row's title.
    title: String,
    /// The row's subtitle, without the hits.
    details: String,
    /// The rule and the line about its name, kept to say again how long it has left.
    rule: Option<(Rule, Option<String>)>,
    /// Whether the rule decides nothing now: expired or turned off (shown dimmed).
    inactive: bool,
    /// How often the rule decided a packet, when the helper told.
    hits: Option<String>,
    /// The drop-in that defines the rule; `None` for the local policy's (and a VM's rules).
    managed_by: Option<ManagedBy>,
}

/// Messages to a rule row.
#[derive(Debug)]
pub enum RuleRowInput {
    /// How often the rule decided a packet ("12 hits, last 3 minutes ago"); `None` when unknown.
    Hits(Option<String>),
    /// The time is now this: say again how long an expiring rule has left.
    Now(SystemTime),
}

#[relm4::factory(pub)]
impl FactoryComponent for RuleRow {
    type Init = RuleRowInit;
    type Input = RuleRowInput;
    type Output = ();
    type CommandOutput = ();
    type ParentWidget = adw::ExpanderRow;

    view! {
        adw::ActionRow {
            set_use_markup: false,
            set_title: &self.title,
            #[watch]
            set_subtitle: &self.subtitle(),
            #[watch]
            set_sensitive: !self.inactive,
            // Also the row's description for screen readers.
            #[watch]
            set_tooltip_text: Some(&self.sentence()),
            // libadwaita puts each prefix before the previous one: badge first, number last.
            add_prefix = &gtk::Label {
                set_label: &self.verdict,
                set_width_chars: 7,
                set_xalign: 0.0,
                add_css_class: "heading",
                add_css_class: self.verdict_css,
            },
            add_prefix = &gtk::Label {
                set_label: &self.position,
                set_width_chars: 3,
                set_xalign: 1.0,
                add_css_class: "dim-label",
                add_css_class: "numeric",
            },
            add_suffix = &lock::icon(self.managed_by.as_ref()),
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        match init {
            RuleRowInit::Rule {
                position,
                rule,
                name,
                managed_by,
            } => {
                let now = SystemTime::now();
                let name = name.as_deref().map(format::name_state);
                let details = details(&rule, name.as_deref(), managed_by.as_ref(), now);
                RuleRow {
                    position: position.to_string(),
                    verdict: format::verdict(rule.action),
                    verdict_css: format::verdict_css(rule.action),
                    title: format::destination(&rule.destination),
                    details,
                    inactive: !rule.is_active(now),
                    hits: None,
                    rule: Some((rule, name)),
                    managed_by,
                }
            }
            RuleRowInit::Default(verdict) => RuleRow {
                position: String::new(),
                verdict: format::verdict(verdict),
                verdict_css: format::verdict_css(verdict),
                // Translators: the last row of a VM's rules: traffic no rule matched.
                title: gettext("Anything else"),
                details: gettext("The default action, always logged"),
                inactive: false,
                hits: None,
                rule: None,
                managed_by: None,
            },
        }
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {
            RuleRowInput::Hits(hits) => self.hits = hits,
            RuleRowInput::Now(now) => {
                if let Some((rule, name)) = &self.rule {
                    if rule.expires.is_some() {
                        self.details =
                            details(rule, name.as_deref(), self.managed_by.as_ref(), now);
                        self.inactive = !rule.is_active(now);
                    }
                }
            }
        }
    }
}

impl RuleRow {
    /// The details, then the hits on a line of their own.
    fn subtitle(&self) -> String {
        match &self.hits {
            Some(hits) if self.details.is_empty() => hits.clone(),
            Some(hits) => format!("{}\n{hits}", self.details),
            None => self.details.clone(),
        }
    }

    /// The whole rule in one sentence, for the tooltip.
    fn sentence(&self) -> String {
        if self.position.is_empty() {
            match &self.hits {
                Some(hits) => i18n_f(
                    "{verdict}: {title}, {hits}",
                    &[
                        ("verdict", &self.verdict),
                        ("title", &self.title),
                        ("hits", hits),
                    ],
                ),
                None => i18n_f(
                    "{verdict}: {title}",
                    &[("verdict", &self.verdict), ("title", &self.title)],
                ),
            }
        } else {
            i18n_f(
                "Rule {position}: {verdict} {title}, {details}",
                &[
                    ("position", &self.position),
                    ("verdict", &self.verdict),
                    ("title", &self.title),
                    ("details", &self.subtitle()),
                ],
            )
        }
    }
}

/// A rule's subtitle at `now`: its details, the state of its name, the file that defines it.
fn details(
    rule: &Rule,
    name: Option<&str>,
    managed_by: Option<&ManagedBy>,
    now: SystemTime,
) -> String {
    let mut details = format::rule_details(rule, now);
    if let Some(state) = name {
        details.push('\n');
        details.push_str(state);
    }
    managed::with_caption(&details, managed_by)
}

/// The state of the name `rule` names among `names` (those of the rule's VM, or of the host).
pub fn name_of(rule: &Rule, names: &[DnsNameState]) -> Option<Box<DnsNameState>> {
    use palisade_dbus::policy::Destination;
    match &rule.destination {
        Destination::Host(_) | Destination::Wildcard(_) => {
            let pattern = rule.destination.to_string();
            names
                .iter()
                .find(|n| n.pattern == pattern)
                .map(|n| Box::new(n.clone()))
        }
        _ => None,
    }
}

/// How many of `rules` name a host or wildcard whose last lookup failed.
pub fn failing_names(rules: &[Rule], names: &[DnsNameState]) -> usize {
    rules
        .iter()
        .filter_map(|r| name_of(r, names))
        .filter(|n| !n.problem.is_empty())
        .count()
}
