//! Accessible names for controls whose content does not name them fully: icon-only buttons,
//! buttons repeated on every row ("Open console") that need the row's name to be told apart, and
//! entries and drop-downs without a label of their own.
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
    let [button] = icon_buttons([(icon_name, label)]);
    button
}

/// Buttons as [`icon_button`] makes them, one per `(icon_name, label)`, from one UI description
/// (the rule editor shows six per rule, and a list may hold a thousand rules).
pub fn icon_buttons<const N: usize>(buttons: [(&str, &str); N]) -> [gtk::Button; N] {
    let objects: String = buttons
        .iter()
        .enumerate()
        .map(|(i, (icon, label))| {
            format!(
                r#"
  <object class="GtkButton" id="button{i}">
    <property name="icon-name">{icon}</property>
    <property name="tooltip-text">{label}</property>
    <accessibility>
      <property name="label">{label}</property>
    </accessibility>
  </object>"#,
                icon = glib::markup_escape_text(icon),
                label = glib::markup_escape_text(label),
            )
        })
        .collect();
    let ui =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<interface>{objects}\n</interface>");
    let builder = gtk::Builder::from_string(&ui);
    std::array::from_fn(|i| {
        let (icon, label) = buttons[i];
        let button = builder
            .object::<gtk::Button>(&format!("button{i}"))
            .unwrap_or_else(|| {
                let button = gtk::Button::from_icon_name(icon);
                button.set_tooltip_text(Some(label));
                button
            });
        // The icon has no accessible of its own: picking the button's centre (what an
        // assistive technology's hit test does) must find the button, not an anonymous image.
        if let Some(icon) = button.child() {
            icon.set_can_target(false);
        }
        button
    })
}

/// A button showing `label`, named `accessible` for screen readers and AT-SPI (e.g. "Open
/// console" shown, "Open console of work" read), with `accessible` as its tooltip too.
pub fn text_button(label: &str, accessible: &str) -> gtk::Button {
    let ui = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<interface>
  <object class="GtkButton" id="button">
    <property name="label">{label}</property>
    <property name="tooltip-text">{accessible}</property>
    <accessibility>
      <property name="label">{accessible}</property>
    </accessibility>
  </object>
</interface>"#,
        label = glib::markup_escape_text(label),
        accessible = glib::markup_escape_text(accessible),
    );
    gtk::Builder::from_string(&ui)
        .object::<gtk::Button>("button")
        .unwrap_or_else(|| {
            let button = gtk::Button::with_label(label);
            button.set_tooltip_text(Some(accessible));
            button
        })
}

/// A new widget of type `W` (a search entry, a drop-down), named `label` for screen readers and
/// AT-SPI, for widgets whose content does not name them.
pub fn named<W: IsA<gtk::Widget> + IsA<glib::Object> + glib::object::IsClass>(label: &str) -> W {
    built(label, None)
}

/// A new widget of type `W` that draws a picture (a chart), presented to screen readers as an
/// image named `label`; its tooltip becomes the image's description.
pub fn image<W: IsA<gtk::Widget> + IsA<glib::Object> + glib::object::IsClass>(label: &str) -> W {
    built(label, Some("img"))
}

fn built<W: IsA<gtk::Widget> + IsA<glib::Object> + glib::object::IsClass>(
    label: &str,
    role: Option<&str>,
) -> W {
    // The role can only be given when the widget is made.
    let role = role.map_or_else(String::new, |role| {
        format!(
            "\n    <property name=\"accessible-role\">{}</property>",
            glib::markup_escape_text(role)
        )
    });
    let ui = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<interface>
  <object class="{class}" id="widget">{role}
    <accessibility>
      <property name="label">{label}</property>
    </accessibility>
  </object>
</interface>"#,
        class = glib::markup_escape_text(W::static_type().name()),
        label = glib::markup_escape_text(label),
    );
    gtk::Builder::from_string(&ui)
        .object::<W>("widget")
        .unwrap_or_else(glib::Object::new::<W>)
}
