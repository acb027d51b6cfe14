//! One firewall rule as a row: its position, a coloured verdict badge, the destination, and the
//! protocol, ports, expiry, logging and comment underneath. Also the closing "anything else" row
//! that shows a VM's default action.

use crate::format;
use crate::i18n::{gettext, i18n_f};
use palisade_dbus::policy::{Rule, Verdict};
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
    /// The row's subtitle.
    details: String,
    /// Whether the rule has expired (shown dimmed).
    expired: bool,
}

/// Messages to a rule row; it is read-only and takes none yet.
#[derive(Debug)]
pub enum RuleRowInput {}

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
            set_subtitle: &self.details,
            set_sensitive: !self.expired,
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
        }
    }

    fn init_model(init: Self::Init, _index: &DynamicIndex, _sender: FactorySender<Self>) -> Self {
        match init {
            RuleRowInit::Rule { position, rule } => {
                let now = SystemTime::now();
                RuleRow {
                    position: position.to_string(),
                    verdict: format::verdict(rule.action),
                    verdict_css: format::verdict_css(rule.action),
                    title: format::destination(&rule.destination),
                    details: format::rule_details(&rule, now),
                    expired: rule.is_expired(now),
                }
            }
            RuleRowInit::Default(verdict) => RuleRow {
                position: String::new(),
                verdict: format::verdict(verdict),
                verdict_css: format::verdict_css(verdict),
                // Translators: the last row of a VM's rules: traffic no rule matched.
                title: gettext("Anything else"),
                details: gettext("The default action, always logged"),
                expired: false,
            },
        }
    }

    fn update(&mut self, message: Self::Input, _sender: FactorySender<Self>) {
        match message {}
    }
}

impl RuleRow {
    /// The whole rule in one sentence, for the tooltip.
    fn sentence(&self) -> String {
        if self.position.is_empty() {
            i18n_f(
                "{verdict}: {title}",
                &[("verdict", &self.verdict), ("title", &self.title)],
            )
        } else {
            i18n_f(
                "Rule {position}: {verdict} {title}, {details}",
                &[
                    ("position", &self.position),
                    ("verdict", &self.verdict),
                    ("title", &self.title),
                    ("details", &self.details),
                ],
            )
        }
    }
}
