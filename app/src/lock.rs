//! The lock on a part of the policy that a drop-in defines: an icon named, for screen readers and
//! AT-SPI, with the caption saying whose file it is ("Managed by your organisation
//! (50-office.toml)"), which is its tooltip too. Hidden on the local policy's parts.

use crate::a11y;
use crate::managed::ManagedBy;
use relm4::gtk;
use relm4::gtk::prelude::*;

/// The lock for a part defined by `managed`; hidden (and left out of the accessibility tree)
/// when `None`.
pub fn icon(managed: Option<&ManagedBy>) -> gtk::Image {
    let caption = managed.map(ManagedBy::caption).unwrap_or_default();
    // GTK 4.8 names an image for screen readers only when it is made (see a11y).
    let image = a11y::named::<gtk::Image>(&caption);
    image.set_icon_name(Some("changes-prevent-symbolic"));
    image.set_tooltip_text(Some(&caption));
    image.set_visible(managed.is_some());
    image.set_valign(gtk::Align::Center);
    image
}
