//! The app rows: the desktop app's start-up to its first frame, its memory after every page was
//! opened, and the time from **Apply** to the keep-or-revert dialog with 100 and 1,000 rules.
//! Each row is measured on its own; one that fails says why in its place.
//!
//! The app runs as the admin `pal-admin` on a private Xvfb with software rendering (cairo), each
//! start with a session bus of its own, talking to the bench's helper (`palisade_tests::demo`'s
//! `DemoApp`). "First frame" is the app's own report: with `PALISADE_REPORT_FIRST_FRAME` set it
//! prints a line once the window's frame clock finished painting its first frame after the
//! window was mapped; the bench times from just before it starts the process until that line
//! is in the app's output (read every 2 ms). The anchor is `palisade-hello`, a bare libadwaita
//! window with one label on the same toolkit, display and renderer, reporting its first frame
//! the same way and started the same way. Runs alternate between the two; disk caches are warm
//! after the first run, whose time is shown too.
//!
//! Memory: the app's RSS once every page of the view switcher (as AT-SPI lists them) was opened
//! and the window settled, next to the bare window's RSS.
//!
//! Apply: the editor open on a 100- or 1,000-rule VM, one rule turned off or on, then the clock runs
//! from the AT-SPI "click" of **Apply the changes** until the dialog is a window of the app on
//! the accessibility bus (`tests/tools/bench_apply.py`, which then presses Keep). The anchor is
//! the same change as a D-Bus `Apply` alone, from the bench.

use super::{median, mib, ms, policy_with_rules, Row, Shape};
use anyhow::{anyhow, bail, Context as _, Result};
use palisade_dbus::proxy::PolicyProxy;
use palisade_dbus::types::Client;
use palisade_tests::demo::DemoApp;
use palisade_tests::{describe, rss_kib, run_bounded, workspace_dir, TestEnv, Xvfb};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Starts timed per program.
const STARTS: usize = 5;
/// Applies timed.
const APPLIES: usize = 3;
/// What the app and the anchor print after their first frame.
const FIRST_FRAME: &str = "palisade: first frame drawn";
/// The interpreter with Debian's `gi`.
const PYTHON: &str = "/usr/bin/python3";

/// The environment both programs get: software rendering on Xvfb, no dconf, the report.
fn program_env() -> [(&'static str, &'static OsStr); 3] {
    [
        ("GSK_RENDERER", OsStr::new("cairo")),
        ("GSETTINGS_BACKEND", OsStr::new("memory")),
        ("PALISADE_REPORT_FIRST_FRAME", OsStr::new("1")),
    ]
}

/// Every app row; a row that could not be measured says why in its place.
pub async fn app_rows(env: &TestEnv) -> Vec<Row> {
    let failed = |what: &str, e: anyhow::Error| {
        (
            what.to_owned(),
            format!("not measured: {e:#}").replace('\n', " "),
            "-".to_owned(),
            "-".to_owned(),
        )
    };
    let xvfb = match Xvfb::start_sized(1024, 900) {
        Ok(xvfb) => xvfb,
        Err(e) => return vec![failed("the app's rows", e)],
    };
    let display = xvfb.display();
    let mut rows = Vec::new();
    match start_and_memory_rows(env, display) {
        Ok(more) => rows.extend(more),
        Err(e) => rows.push(failed("app start-up and memory", e)),
    }
    for count in [100, 1_000] {
        let what = format!("app: Apply to the keep dialog, {count} rules");
        match apply_row(env, display, count).await {
            Ok(row) => rows.push(row),
            Err(e) => rows.push(failed(&what, e)),
        }
    }
    rows
}

/// Start-up to the first frame, and the memory after every page was opened.
fn start_and_memory_rows(env: &TestEnv, display: &str) -> Result<Vec<Row>> {
    let example = std::fs::read_to_string(workspace_dir().join("data/examples/policy.toml"))?;
    apply_as_root(env, &example)?;
    let app_bin = env.bin_dir().join("palisade");
    let hello_bin = env.bin_dir().join("palisade-hello");
    for bin in [&app_bin, &hello_bin] {
        if !bin.exists() {
            bail!(
                "{} is missing: cargo build --release --workspace",
                bin.display()
            );
        }
    }

    // Start-up to the first frame.
    let (mut app_times, mut hello_times) = (Vec::new(), Vec::new());
    for _ in 0..STARTS {
        app_times.push(first_frame(env, display, &app_bin)?.1);
        hello_times.push(first_frame(env, display, &hello_bin)?.1);
    }
    let (app_first, hello_first) = (app_times[0], hello_times[0]);
    let mut rows = vec![(
        format!("app start-up to its first frame (median of {STARTS}; first run)"),
        format!("{} ({})", ms(median(&mut app_times)), ms(app_first)),
        format!(
            "bare libadwaita window (palisade-hello): {} ({})",
            ms(median(&mut hello_times)),
            ms(hello_first)
        ),
        "< 500 ms".into(),
    )];

    // Memory after every page.
    let (app, _) = first_frame(env, display, &app_bin)?;
    let tree = wait_for(env, &app, "the page switcher", |t| page_tabs(t).len() >= 2)?;
    let tabs = page_tabs(&tree);
    for tab in &tabs {
        act(env, &app, "page tab", tab)?;
        std::thread::sleep(Duration::from_secs(2));
    }
    std::thread::sleep(Duration::from_secs(3));
    let app_rss = rss_kib(app.pid());
    drop(app);
    let (hello, _) = first_frame(env, display, &hello_bin)?;
    std::thread::sleep(Duration::from_secs(3));
    let hello_rss = rss_kib(hello.pid());
    drop(hello);
    rows.push((
        format!("app RSS after opening its {} pages", tabs.len()),
        mib(app_rss),
        format!("bare libadwaita window: {}", mib(hello_rss)),
        "-".into(),
    ));
    Ok(rows)
}

/// Apply to the keep-or-revert dialog with a `count`-rule policy, next to the same change as
/// one D-Bus `Apply`.
async fn apply_row(env: &TestEnv, display: &str, count: usize) -> Result<Row> {
    let app_bin = env.bin_dir().join("palisade");
    let doc = policy_with_rules(count, Shape::Mergeable, 443, None);
    apply_as_root(env, &doc)?;
    let (app, _) = first_frame(env, display, &app_bin)?;
    act(env, &app, "page tab", "Firewall")?;
    act(env, &app, "push button", "Edit")?;
    let tool = tool(env, "bench_apply.py");
    let mut applies = Vec::new();
    for i in 0..APPLIES {
        let change = if i % 2 == 0 {
            "Turn off rule 1 of work"
        } else {
            "Turn on rule 1 of work"
        };
        let mut cmd = app.command(env, &[OsStr::new(PYTHON), tool.as_os_str()])?;
        cmd.args(["palisade", change, "Keep these settings?", "_Keep Keep"]);
        let out = run_bounded(&mut cmd, Duration::from_secs(600));
        if !out.status.success() {
            bail!(
                "bench_apply.py: {}\n--- the app's output\n{}",
                describe(&out),
                std::fs::read_to_string(app.log()).unwrap_or_default()
            );
        }
        let millis: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| describe(&out))?;
        applies.push(Duration::from_secs_f64(millis / 1000.0));
        // The kept generation becomes the editor's base again.
        std::thread::sleep(Duration::from_secs(5));
    }
    drop(app);

    // The anchor: the same change as one D-Bus Apply from here.
    let conn = zbus::connection::Builder::address(env.bus_address())
        .build()
        .await?;
    let proxy = PolicyProxy::new(&conn).await?;
    let off = doc.replacen(
        "[[vm.rule]]\naction = \"accept\"\n",
        "[[vm.rule]]\naction = \"accept\"\nenabled = false\n",
        1,
    );
    let mut alone = Vec::new();
    for i in 0..APPLIES {
        let next = if i % 2 == 0 { &off } else { &doc };
        let base = proxy.get().await?.0;
        let started = Instant::now();
        proxy.apply(next.as_bytes(), base, 0, Client::Other).await?;
        alone.push(started.elapsed());
    }
    Ok((
        format!("app: Apply to the keep dialog, {count} rules (median of {APPLIES})"),
        ms(median(&mut applies)),
        format!(
            "the same change as one D-Bus Apply: {}",
            ms(median(&mut alone))
        ),
        "-".into(),
    ))
}

/// Applies `doc` as root, without a confirmation window.
fn apply_as_root(env: &TestEnv, doc: &str) -> Result<()> {
    let path = env.write_file("bench-app.toml", doc)?;
    let out = env.palisadectl(None, &["policy", "apply", &path.to_string_lossy()]);
    if !out.status.success() {
        bail!("palisadectl policy apply: {}", describe(&out));
    }
    Ok(())
}

/// Starts `program` as the admin and waits for its first frame; the running program and the
/// time from its start to that frame.
fn first_frame(env: &TestEnv, display: &str, program: &Path) -> Result<(DemoApp, Duration)> {
    let mut app = DemoApp::start_program(env, display, program, &program_env())?;
    let deadline = app.started() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(app.log()).unwrap_or_default();
        if log.contains(FIRST_FRAME) {
            let took = app.started().elapsed();
            return Ok((app, took));
        }
        if Instant::now() > deadline || !app.running() {
            return Err(anyhow!(
                "{} drew no frame within 120 s:\n{log}",
                program.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `tests/tools/NAME` where the admin can run it.
fn tool(env: &TestEnv, name: &str) -> PathBuf {
    let tools = workspace_dir().join("tests/tools");
    env.user_path(&tools.join("atspi_common.py"));
    env.user_path(&tools.join(name))
}

/// Reads the window over AT-SPI until `check` passes (at most 120 s); that tree.
fn wait_for(
    env: &TestEnv,
    app: &DemoApp,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let tool = tool(env, "atspi_dump.py");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut cmd = app.command(env, &[OsStr::new(PYTHON), tool.as_os_str()])?;
        cmd.arg("palisade");
        let out = run_bounded(&mut cmd, Duration::from_secs(120));
        if let Ok(tree) = serde_json::from_slice::<Value>(&out.stdout) {
            if check(&tree) {
                return Ok(tree);
            }
        }
        if Instant::now() > deadline {
            bail!("the app did not show {what} within 120 s");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Clicks the control `role` named `name` over AT-SPI, retrying for at most 120 s.
fn act(env: &TestEnv, app: &DemoApp, role: &str, name: &str) -> Result<()> {
    let tool = tool(env, "atspi_action.py");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut cmd = app.command(env, &[OsStr::new(PYTHON), tool.as_os_str()])?;
        cmd.args(["palisade", role, name]);
        let out = run_bounded(&mut cmd, Duration::from_secs(120));
        if out.status.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("could not click the {role} {name:?}: {}", describe(&out));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn nodes(tree: &Value) -> Vec<&Value> {
    fn walk<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
        out.push(node);
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

/// The titles of the view switcher's pages, each once, in order.
fn page_tabs(tree: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in nodes(tree) {
        if n["role"] == "page tab" {
            if let Some(name) = n["name"].as_str().filter(|s| !s.is_empty()) {
                if !out.iter().any(|o| o == name) {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out
}
