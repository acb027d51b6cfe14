//! One firewall rule as a row: its position, a coloured verdict badge, the destination, and the
//! protocol, ports, expiry, logging and comment underneath, and for a rule naming a host or a
//! wildcard the state of that name (its last answer's addresses, or why it fails). Also the
//! closing "anything else" row that shows a VM's default action. Each row also says how often
//! its rule decided a packet, once the policy view has read the helper's counters. A host rule
//! that a drop-in defines shows a lock and its file.
//!
//! A list of rows is shown again in place ([`show_rules`]): row `k` stays row `k`, a row whose
//! rule is unchanged is left alone and one whose rule changed takes the new one, so that a new
//! generation of a policy with a thousand rules does not make a thousand rows again (GTK
//! announces every new widget on the accessibility bus). A row is made anew only where its kind,
//! verdict or lock changed: the lock is named for screen readers when it is made.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use crate::lock;
use crate::managed::{self, ManagedBy};
use palisade_dbus::policy::{Rule, Verdict};
use palisade_dbus::types::DnsNameState;
use relm4::adw::prelude::*;
use relm4::factory::{DynamicIndex, FactoryComponent, FactorySender, FactoryVecDeque};
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
    /// Show this rule instead, of the same verdict and lock (see [`show_rules`]).
    Set(Box<RuleRowInit>),
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
            #[watch]
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
        RuleRow::from_init(init, SystemTime::now())
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {
            RuleRowInput::Hits(hits) => self.hits = hits,
            RuleRowInput::Set(init) => {
                // The hits are those of the position: they stay until the next reading.
                let hits = self.hits.take();
                *self = RuleRow::from_init(*init, SystemTime::now());
                self.hits = hits;
            }
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
    fn from_init(init: RuleRowInit, now: SystemTime) -> RuleRow {
        match init {
            RuleRowInit::Rule {
                position,
                rule,
                name,
                managed_by,
            } => {
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

    /// How the row stands to `init`: showing it already, able to show it in place (same
    /// position, kind, verdict and lock), or not.
    fn fit(&self, init: &RuleRowInit) -> Fit {
        match (init, &self.rule) {
            (
                RuleRowInit::Rule {
                    position,
                    rule,
                    name,
                    managed_by,
                },
                Some((shown, shown_name)),
            ) => {
                if self.position != position.to_string()
                    || shown.action != rule.action
                    || self.managed_by != *managed_by
                {
                    Fit::Remake
                } else if shown == rule && *shown_name == name.as_deref().map(format::name_state) {
                    Fit::Same
                } else {
                    Fit::InPlace
                }
            }
            (RuleRowInit::Default(verdict), None) if self.verdict == format::verdict(*verdict) => {
                Fit::Same
            }
            _ => Fit::Remake,
        }
    }

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

/// How a row stands to what it should show.
enum Fit {
    Same,
    InPlace,
    Remake,
}

/// Shows `inits` in `rows`, in place as far as it can (see the module's comment).
pub fn show_rules(rows: &mut FactoryVecDeque<RuleRow>, inits: Vec<RuleRowInit>) {
    let mut guard = rows.guard();
    let count = inits.len();
    for (i, init) in inits.into_iter().enumerate() {
        match guard.get(i).map(|row| row.fit(&init)) {
            Some(Fit::Same) => {}
            Some(Fit::InPlace) => guard.send(i, RuleRowInput::Set(Box::new(init))),
            Some(Fit::Remake) => {
                guard.remove(i);
                guard.insert(i, init);
            }
            None => {
                guard.push_back(init);
            }
        }
    }
    while guard.len() > count {
        guard.pop_back();
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

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dbus::policy::{Destination, Protocol};

    fn rule(action: Verdict, comment: &str) -> Rule {
        Rule {
            action,
            destination: Destination::Any,
            protocol: Protocol::Any,
            ports: None,
            icmp_type: None,
            expires: None,
            log: false,
            comment: comment.into(),
            enabled: true,
        }
    }

    fn init(position: usize, rule: Rule) -> RuleRowInit {
        RuleRowInit::Rule {
            position,
            rule,
            name: None,
            managed_by: None,
        }
    }

    fn fit(shown: RuleRowInit, next: RuleRowInit) -> &'static str {
        match RuleRow::from_init(shown, SystemTime::now()).fit(&next) {
            Fit::Same => "same",
            Fit::InPlace => "in place",
            Fit::Remake => "remake",
        }
    }

    #[test]
    fn a_row_is_left_alone_changed_in_place_or_made_anew() {
        let accept = rule(Verdict::Accept, "mail");
        assert_eq!(
            fit(init(3, accept.clone()), init(3, accept.clone())),
            "same"
        );
        // Another comment, or turned off: the same row says so.
        assert_eq!(
            fit(
                init(3, accept.clone()),
                init(3, rule(Verdict::Accept, "web"))
            ),
            "in place"
        );
        let off = Rule {
            enabled: false,
            ..accept.clone()
        };
        assert_eq!(fit(init(3, accept.clone()), init(3, off)), "in place");
        // The badge's colour, the number, the lock and the kind of row are made with the row.
        assert_eq!(
            fit(
                init(3, accept.clone()),
                init(3, rule(Verdict::Drop, "mail"))
            ),
            "remake"
        );
        assert_eq!(
            fit(init(3, accept.clone()), init(4, accept.clone())),
            "remake"
        );
        let managed = RuleRowInit::Rule {
            position: 3,
            rule: accept.clone(),
            name: None,
            managed_by: Some(ManagedBy {
                file: "50-office.toml".into(),
                kind: palisade_dbus::types::SourceKind::Admin,
            }),
        };
        assert_eq!(fit(init(3, accept.clone()), managed), "remake");
        assert_eq!(
            fit(init(3, accept), RuleRowInit::Default(Verdict::Drop)),
            "remake"
        );
        assert_eq!(
            fit(
                RuleRowInit::Default(Verdict::Drop),
                RuleRowInit::Default(Verdict::Drop)
            ),
            "same"
        );
        assert_eq!(
            fit(
                RuleRowInit::Default(Verdict::Drop),
                RuleRowInit::Default(Verdict::Reject)
            ),
            "remake"
        );
    }
}
