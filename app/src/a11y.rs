//! Accessible names for controls whose content does not name them (icon-only buttons).
//!
//! gtk4-rs exposes `Accessible::update_property` only when built for GTK 4.10, and Debian 12
//! ships GTK 4.8. GtkBuilder's `<accessibility>` element sets the same accessible property on
//! every GTK 4, without unsafe code, so such widgets are made from a one-object UI description.

use relm4::gtk;
use relm4::gtk::glib;
use relm4::gtk::prelude::*;

/// A button showing only `icon_name`, named `label` for screen readers and AT-SPI, with `label`
/// as its tooltip too.
pub fn icon_button(icon_name: &str, label: &str) -> gtk::Button {
    let ui = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<interface>
  <object class="GtkButton" id="button">
    <property name="icon-name">{icon}</property>
    <property name="tooltip-text">{label}</property>
    <accessibility>
      <property name="label">{label}</property>
    </accessibility>
  </object>
</interface>"#,
        icon = glib::markup_escape_text(icon_name),
        label = glib::markup_escape_text(label),
    );
    gtk::Builder::from_string(&ui)
        .object::<gtk::Button>("button")
        .unwrap_or_else(|| {
            let button = gtk::Button::from_icon_name(icon_name);
            button.set_tooltip_text(Some(label));
            button
        })
}
