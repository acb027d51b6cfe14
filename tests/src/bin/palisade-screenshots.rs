//! `make screenshots`: PNGs of every main view of the app for the README and the docs, in light
//! and dark and in English and Russian, as `docs/screenshots/NAME-{light,dark}-{en,ru}.png`.
//!
//! It runs the demo's installation (`palisade_tests::demo`: the example policy and VM `demo`
//! running the tiny guest, whose blocked tries fill the Activity page) and, for each language
//! and colour scheme, the app as the demo admin on a fresh Xvfb. It walks the window's view
//! switcher as AT-SPI shows it, so a page added later is photographed without a change here;
//! the Firewall page is photographed a second time while editing, with the rule dialog open.
//! Pages are named after their English titles (`my-machines`, `firewall`, …), the same names in
//! every language. The colour scheme is libadwaita's own `ADW_DEBUG_COLOR_SCHEME` (honoured by
//! libadwaita 1.2); Russian is `LANGUAGE=ru` with the catalogue compiled from `po/ru.po`.
//!
//! Xvfb has no window manager: this program does its part, centring a dialog over the window
//! and giving it the focus (xdotool). Each picture is the window's area of the screen, so a
//! dialog over it is in the picture; optipng shrinks the files when it is installed.
//!
//! Needs root (like the demo and the tests) and the packages of `tests/scripts/deps.sh`.

use anyhow::{anyhow, bail, Context, Result};
use palisade_tests::demo::{Demo, DemoApp};
use palisade_tests::{describe, run_bounded, workspace_dir, TestEnv, Xvfb};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: palisade-screenshots [--tcg] [--out DIR] [--only SCHEME-LANG]...

Writes PNGs of every page of the Palisade app, light and dark, English and Russian, to
DIR (default: docs/screenshots in the source tree) as NAME-{light,dark}-{en,ru}.png.
--only dark-ru (repeatable) takes only that set, after the light English one, whose page
titles name the files. --tcg runs the demo VM without KVM. Run as root: it starts the same private installation
as `make demo`, and removes it afterwards.";

/// The screen: the window's default size fits, and the pictures stay under 1024 px wide.
const SCREEN: (u32, u32) = (1024, 900);
/// How long the window may take to show its pages (a debug build under Xvfb, busy machine).
const SHOW_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a page is given to read the helper and draw before it is photographed.
const SETTLE: Duration = Duration::from_secs(4);
/// The interpreter with Debian's `gi`.
const PYTHON: &str = "/usr/bin/python3";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let tcg = args.iter().any(|a| a == "--tcg");
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).context("--out needs a folder")?),
        None => workspace_dir().join("docs/screenshots"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();

    let demo = Demo::start(tcg, |line| println!("{line}"))?;
    println!("The demo is up; the guest says:\n{}", demo.results);
    let locale = compile_catalogues(&demo.env)?;
    let mut names: Vec<String> = Vec::new();
    let mut written = 0;
    // English first: its page titles name the files of every language.
    for lang in std::iter::once("en").chain(LANGUAGES) {
        for scheme in ["light", "dark"] {
            let wanted = only.is_empty() || only.contains(&format!("{scheme}-{lang}").as_str());
            // The first set (light English) names the files: it is always taken.
            if !wanted && !names.is_empty() {
                continue;
            }
            written += shoot(&demo, &locale, lang, scheme, &out, &mut names)
                .with_context(|| format!("the {lang} {scheme} screenshots"))?;
        }
    }
    println!("Wrote {written} screenshots to {}", out.display());
    Ok(())
}

/// The languages photographed besides English (the app's own).
const LANGUAGES: [&str; 1] = ["ru"];

/// Compiles the catalogues of [`LANGUAGES`] from `po/` into a folder the demo admin can read;
/// its path (for `PALISADE_LOCALEDIR`).
fn compile_catalogues(env: &TestEnv) -> Result<PathBuf> {
    let dir = env.dir().join("locale");
    for lang in LANGUAGES {
        let messages = dir.join(lang).join("LC_MESSAGES");
        std::fs::create_dir_all(&messages)?;
        let po = workspace_dir().join("po").join(format!("{lang}.po"));
        let out = run_bounded(
            Command::new("msgfmt")
                .arg("-o")
                .arg(messages.join("palisade.mo"))
                .arg(&po),
            Duration::from_secs(60),
        );
        if !out.status.success() {
            bail!(
                "msgfmt {} (package gettext): {}",
                po.display(),
                describe(&out)
            );
        }
    }
    Ok(env.user_path(&dir))
}

/// The app in one language and colour scheme, on its own X server.
struct Shooter<'a> {
    demo: &'a Demo,
    app: DemoApp,
    xvfb: Xvfb,
    lang: &'a str,
    locale: &'a Path,
}

/// Photographs every page in `lang` and `scheme`; how many files it wrote. `names` holds the
/// pages' file names, filled on the first (English) run.
fn shoot(
    demo: &Demo,
    locale: &Path,
    lang: &str,
    scheme: &str,
    out: &Path,
    names: &mut Vec<String>,
) -> Result<usize> {
    let xvfb = Xvfb::start_sized(SCREEN.0, SCREEN.1)?;
    let colours = if scheme == "dark" {
        "prefer-dark"
    } else {
        "prefer-light"
    };
    let mut extra: Vec<(&str, &OsStr)> = vec![
        ("GSK_RENDERER", OsStr::new("cairo")),
        ("GSETTINGS_BACKEND", OsStr::new("memory")),
        ("ADW_DEBUG_COLOR_SCHEME", OsStr::new(colours)),
        ("PALISADE_LOCALEDIR", locale.as_os_str()),
    ];
    if lang != "en" {
        extra.push(("LANGUAGE", OsStr::new(lang)));
    }
    let app = demo.start_app_with(xvfb.display(), &extra)?;
    let mut shooter = Shooter {
        demo,
        app,
        xvfb,
        lang,
        locale,
    };
    let tree = shooter.wait_for("the page switcher", |t| page_tabs(t).len() >= 2)?;
    let tabs = page_tabs(&tree);
    if names.is_empty() {
        names.extend(tabs.iter().map(|t| file_name(t)));
    } else if names.len() != tabs.len() {
        bail!("{lang} shows {} pages, English {}", tabs.len(), names.len());
    }
    let file = |name: &str| out.join(format!("{name}-{scheme}-{lang}.png"));
    let mut written = 0;
    for (tab, name) in tabs.iter().zip(names.iter()) {
        shooter.act("page tab", tab, &["click"])?;
        std::thread::sleep(SETTLE);
        shooter.screenshot(&file(name))?;
        written += 1;
        if name == "firewall" {
            // The editor, with the dialog of a new rule for VM work.
            shooter.act("push button", &shooter.tr("Edit", &[]), &["click"])?;
            std::thread::sleep(SETTLE);
            let add = shooter.tr("Add a rule to {list}", &[("list", "work")]);
            shooter.act("push button", &add, &["click"])?;
            std::thread::sleep(SETTLE);
            shooter.centre_dialog()?;
            shooter.screenshot(&file("firewall-editing"))?;
            written += 1;
            shooter.xdotool(&["key", "Escape"])?;
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    if !shooter.app.running() {
        bail!(
            "the app exited; its output is in {}",
            shooter.app.log().display()
        );
    }
    Ok(written)
}

impl Shooter<'_> {
    /// A command run as the demo admin in the app's session.
    fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Command> {
        self.app.command(&self.demo.env, argv)
    }

    /// `tests/tools/NAME` where the demo admin can run it.
    fn tool(&self, name: &str) -> PathBuf {
        let tools = workspace_dir().join("tests/tools");
        self.demo.env.user_path(&tools.join("atspi_common.py"));
        self.demo.env.user_path(&tools.join(name))
    }

    /// `msgid` in the app's language, its `{name}` placeholders filled, as the app does.
    fn tr(&self, msgid: &str, args: &[(&str, &str)]) -> String {
        let mut text = msgid.to_owned();
        if self.lang != "en" {
            let out = run_bounded(
                Command::new("gettext")
                    .args(["-d", "palisade", "--", msgid])
                    .env("TEXTDOMAINDIR", self.locale)
                    .env("LANGUAGE", self.lang)
                    .env("LANG", "C.UTF-8"),
                Duration::from_secs(10),
            );
            if out.status.success() {
                text = String::from_utf8_lossy(&out.stdout).into_owned();
            }
        }
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// Reads the window over AT-SPI until `check` passes; that tree.
    fn wait_for(&self, what: &str, check: impl Fn(&Value) -> bool) -> Result<Value> {
        let tool = self.tool("atspi_dump.py");
        let deadline = Instant::now() + SHOW_TIMEOUT;
        loop {
            let mut cmd = self.command(&[OsStr::new(PYTHON), tool.as_os_str()])?;
            cmd.arg("palisade");
            let out = run_bounded(&mut cmd, Duration::from_secs(30));
            if out.status.success() {
                if let Ok(tree) = serde_json::from_slice::<Value>(&out.stdout) {
                    if check(&tree) {
                        return Ok(tree);
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the window did not show {what} within {SHOW_TIMEOUT:?}; the app's output is \
                     in {}",
                    self.app.log().display()
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Does `action` on the control `role` named `name` over AT-SPI, retrying while it is not
    /// there yet.
    fn act(&self, role: &str, name: &str, action: &[&str]) -> Result<()> {
        let tool = self.tool("atspi_action.py");
        let deadline = Instant::now() + SHOW_TIMEOUT;
        loop {
            let mut cmd = self.command(&[OsStr::new(PYTHON), tool.as_os_str()])?;
            cmd.args(["palisade", role, name]).args(action);
            let out = run_bounded(&mut cmd, Duration::from_secs(30));
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "could not {action:?} the {role} {name:?}: {}",
                    describe(&out)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Runs xdotool on the app's display; its output.
    fn xdotool(&self, args: &[&str]) -> Result<String> {
        let out = run_bounded(
            Command::new("xdotool")
                .args(args)
                .env("DISPLAY", self.xvfb.display()),
            Duration::from_secs(20),
        );
        if !out.status.success() {
            bail!(
                "xdotool {} (package xdotool): {}",
                args.join(" "),
                describe(&out)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The app's mapped windows, bottom to top (toplevels are the root's children here: no
    /// window manager reparents them).
    fn windows(&self) -> Result<Vec<String>> {
        Ok(self
            .xdotool(&["search", "--onlyvisible", "--classname", "^palisade$"])?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }

    /// (x, y, width, height) of the window `id`.
    fn geometry(&self, id: &str) -> Result<(i64, i64, i64, i64)> {
        let text = self.xdotool(&["getwindowgeometry", "--shell", id])?;
        let field = |key: &str| -> Result<i64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| anyhow!("no {key} in {text:?}"))
        };
        Ok((field("X")?, field("Y")?, field("WIDTH")?, field("HEIGHT")?))
    }

    /// Does the window manager's part for a dialog: centres the topmost window over the first
    /// and gives it the focus.
    fn centre_dialog(&self) -> Result<()> {
        let ids = self.windows()?;
        let (Some(main), Some(dialog)) = (ids.first(), ids.last()) else {
            bail!("the app has no window");
        };
        if main == dialog {
            bail!("no dialog opened");
        }
        let (mx, my, mw, mh) = self.geometry(main)?;
        let (_, _, w, h) = self.geometry(dialog)?;
        let x = (mx + (mw - w) / 2).max(0).to_string();
        let y = (my + (mh - h) / 3).max(0).to_string();
        self.xdotool(&["windowmove", dialog, &x, &y])?;
        self.xdotool(&["windowfocus", dialog])?;
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    }

    /// Saves the main window's area of the screen (with any dialog over it) as `path`.
    fn screenshot(&self, path: &Path) -> Result<()> {
        let ids = self.windows()?;
        let main = ids
            .first()
            .ok_or_else(|| anyhow!("the app has no window"))?;
        let (x, y, w, h) = self.geometry(main)?;
        let out = run_bounded(
            Command::new("import")
                .args(["-display", self.xvfb.display(), "-window", "root", "-crop"])
                .arg(format!("{w}x{h}+{x}+{y}"))
                .arg("+repage")
                .arg(path),
            Duration::from_secs(30),
        );
        if !out.status.success() {
            bail!("import (package imagemagick): {}", describe(&out));
        }
        let optimised = run_bounded(
            Command::new("optipng").args(["-quiet", "-o2"]).arg(path),
            Duration::from_secs(120),
        );
        if !optimised.status.success() {
            println!(
                "optipng did not shrink {} (package optipng): {}",
                path.display(),
                describe(&optimised)
            );
        }
        println!("{}", path.display());
        Ok(())
    }
}

/// The titles of the view switcher's pages, in order (the switcher is in the tree twice, in
/// the header bar and at the bottom; each title is taken once).
fn page_tabs(tree: &Value) -> Vec<String> {
    fn walk(node: &Value, out: &mut Vec<String>) {
        if node["role"] == "page tab" {
            if let Some(name) = node["name"].as_str() {
                if !name.is_empty() && !out.iter().any(|n| n == name) {
                    out.push(name.to_owned());
                }
            }
        }
        for child in node["children"].as_array().map_or(&[][..], Vec::as_slice) {
            walk(child, out);
        }
    }
    let mut out = Vec::new();
    for window in tree["windows"].as_array().map_or(&[][..], Vec::as_slice) {
        walk(window, &mut out);
    }
    out
}

/// A page's file name from its English title: "My machines" → "my-machines".
fn file_name(title: &str) -> String {
    title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}
