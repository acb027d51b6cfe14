//! The anchor of the bench's app rows: a bare libadwaita window with one label, on the same
//! toolkit, renderer and display as the app, reporting its first painted frame exactly as the
//! app does with `PALISADE_REPORT_FIRST_FRAME` ("palisade: first frame drawn" on stderr after the
//! frame clock's first `after-paint` once the window is mapped). What a GTK 4 window costs before
//! any of Palisade's own work.

use relm4::adw::prelude::*;
use relm4::{adw, gtk};
use std::cell::Cell;
use std::rc::Rc;

fn main() {
    let app = adw::Application::new(Some("io.palisade.BenchHello"), Default::default());
    app.connect_activate(|app| {
        let window = adw::ApplicationWindow::new(app);
        window.set_default_size(760, 820);
        window.set_content(Some(&gtk::Label::new(Some("Hello"))));
        let reported = Rc::new(Cell::new(false));
        window.connect_map(move |window| {
            let Some(clock) = window.frame_clock() else {
                return;
            };
            if reported.replace(true) {
                return;
            }
            let slot = Rc::new(Cell::new(None));
            let handler = Rc::clone(&slot);
            let id = clock.connect_after_paint(move |clock| {
                eprintln!("palisade: first frame drawn");
                if let Some(id) = handler.take() {
                    clock.disconnect(id);
                }
            });
            slot.set(Some(id));
        });
        window.present();
    });
    app.run_with_args::<&str>(&[]);
}
