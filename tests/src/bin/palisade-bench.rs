//! `make bench`: measures Palisade on the real stack and prints a table, each figure next to an
//! anchor measured in the same run on the same machine. Never asserts on time: these machines
//! are noisy, so numbers are reported, not judged.
//!
//! Apply latency is the D-Bus `Apply` call until its reply, which the helper sends only after
//! the kernel committed the transaction and the generation is on disk. The anchor is `nft -f` of
//! the same ruleset as text (the helper's preview of the same policy), replacing the table.
//!
//! The big-list rows run in a fresh environment: the import and load next to `nft -f` of the
//! same list; a small insert into a timeout set, timed every ~5 ms over netlink while the helper
//! loads the list and while `nft -f` does; and the cost of a TCP connection over loopback with
//! the million-entry list that the measured connections are looked up in (proven by a listed
//! address that the same path refuses), measured round for round beside namespaces with no
//! rules, with connection tracking alone and with a 10,000-rule linear chain.
//!
//! The DNS rows run in the DNS lab (`palisade_tests::dns`): the time from the upstream's answer
//! to the kernel's acknowledgement of its addresses (the helper records it per question), idle
//! and while a million-entry list loads; questions per second through the forwarder against the
//! same client straight to the same server; and misses over 1,000 rotating answers.
//!
//! The fleet rows (`fleet.rs`): a changed drop-in until its generation is live, next to the same
//! change through `palisadectl policy apply`; a no-op run of the Ansible collection on one host,
//! next to a play of one `ansible.builtin.ping` on the same host.
//!
//! The app rows (`app.rs`): the desktop app's start-up to its first frame next to a bare
//! libadwaita window's (`palisade-hello`), its RSS after opening every page, and Apply to the
//! keep-or-revert dialog with a 1,000-rule policy next to the same change as one D-Bus `Apply`.
//!
//! The lab rows (`lab.rs`): throughput and connections between two guests across the bridge
//! with the port guards and without them; a connection through a VM's DNAT next to one to a
//! listener on the same host address.

#[path = "palisade-bench/app.rs"]
mod app;
#[path = "palisade-bench/droplog.rs"]
mod droplog;
#[path = "palisade-bench/fleet.rs"]
mod fleet;
#[path = "palisade-bench/lab.rs"]
mod lab;

use anyhow::{anyhow, Context, Result};
use palisade_dbus::proxy::PolicyProxy;
use palisade_dbus::types::Client;
use palisade_nfnetlink::{Batch, Element, NftSocket, SetRef, TableFamily};
use palisade_tests::{Netns, TestEnv};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

/// Whether `section` of the bench runs: all of them, unless `PALISADE_BENCH_ONLY` names some
/// (comma-separated: rules, vm, blocklist, load, dns, droplog, fleet, lab, app) — for timing one part while working on
/// it; `make bench` runs everything.
fn wanted(section: &str) -> bool {
    std::env::var("PALISADE_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn main() -> Result<()> {
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    if wanted("rules") || wanted("vm") {
        rows.extend(rules_and_vm_rows()?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A fresh environment, so the helper's peak memory is the list's alone.
    if wanted("blocklist") {
        rows.extend(rt.block_on(blocklist_rows())?);
    }
    if wanted("load") {
        rows.extend(load_rows()?);
    }
    if wanted("dns") {
        rows.extend(dns_rows()?);
    }
    if wanted("droplog") {
        let env = TestEnv::start().context("starting the drop log's environment")?;
        rows.extend(rt.block_on(droplog::droplog_rows(&env))?);
    }
    if wanted("fleet") {
        let env = TestEnv::start().context("starting the fleet rows' environment")?;
        rows.extend(rt.block_on(fleet::fleet_rows(&env))?);
    }
    if wanted("lab") {
        let env = TestEnv::start().context("starting the lab rows' environment")?;
        rows.extend(lab::lab_rows(&env)?);
    }
    if wanted("app") {
        let env = TestEnv::start().context("starting the app rows' environment")?;
        // Each app row stands alone: a failure (the 1,000-rule editor has been too slow for the
        // AT-SPI tool to find its buttons) is a row of the table, not the loss of the others.
        rows.extend(rt.block_on(app::app_rows(&env)));
    }
    print_table(&rows);
    Ok(())
}

/// The apply rows for growing rule counts, idle memory, and the VM and console rows.
fn rules_and_vm_rows() -> Result<Vec<(String, String, String, String)>> {
    let env = TestEnv::start().context("starting the bench environment")?;
    std::thread::sleep(Duration::from_secs(1));
    let start_rss = env.helper_pid().map(palisade_tests::rss_kib).unwrap_or(0);
    let start_parts = env
        .helper_pid()
        .map(palisade_tests::rss_parts_kib)
        .unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    rt.block_on(async {
        if !wanted("rules") {
            return anyhow::Ok(());
        }
        let conn = zbus::connection::Builder::address(env.bus_address())
            .build()
            .await?;
        let proxy = PolicyProxy::new(&conn).await?;
        let cases = [
            (10usize, Shape::Mergeable),
            (1_000, Shape::Mergeable),
            (10_000, Shape::Mergeable),
            (10_000, Shape::Hosts),
            (10_000, Shape::Networks),
            (10_000, Shape::Ranges),
            (10_000, Shape::Drops),
        ];
        for (rules, mergeable) in cases {
            let label = format!(
                "{rules} rules{}",
                match mergeable {
                    Shape::Mergeable => "",
                    Shape::Hosts => ", every neighbour different (no merging; one host and port each: a mark map)",
                    Shape::Networks => ", every neighbour different (no merging; a /24 network and port each: a mark map)",
                    Shape::Ranges => ", every neighbour different (no merging; one host and 100 ports each: an interval map)",
                    Shape::Drops => ", every neighbour different (no merging; drops of one host and 100 ports each: a rule set)",
                }
            );
            // Every timed apply changes the live policy, so none is an apply of what is already
            // there: the whole policy alternates between two versions whose every rule differs
            // (all rules change), then single rules change one after another.
            let whole =
                |k: usize| policy_with_rules(rules, mergeable, 1000 + 2000 * (k % 2) as u16, None);
            let mut all = Vec::new();
            for k in 0..=RUNS {
                let doc = whole(k);
                let base = proxy.get().await?.0;
                let started = Instant::now();
                proxy.apply(doc.as_bytes(), base, 0, Client::Other).await?;
                if k > 0 {
                    all.push(started.elapsed());
                }
            }
            let mut one = Vec::new();
            for k in 0..RUNS {
                let changed = (k * 7919 + 3) % rules;
                let doc = policy_with_rules(
                    rules,
                    mergeable,
                    1000 + 2000 * (RUNS % 2) as u16,
                    Some((changed, 9000 + k as u16)),
                );
                let base = proxy.get().await?.0;
                let started = Instant::now();
                proxy.apply(doc.as_bytes(), base, 0, Client::Other).await?;
                one.push(started.elapsed());
            }
            let anchor = nft_anchor(&env, &proxy, &whole(0)).await?;
            let target = match (rules, mergeable) {
                (10_000, Shape::Mergeable) => "< 500 ms",
                (10_000, _) => "< 300 ms",
                _ => "-",
            };
            rows.push((
                format!("apply, {label}, every rule changed (median of {RUNS})"),
                ms(median(&mut all)),
                format!("nft -f of the same ruleset: {}", ms(anchor)),
                target.into(),
            ));
            rows.push((
                format!("apply, {label}, one rule changed (median of {RUNS})"),
                ms(median(&mut one)),
                format!("nft -f of the whole ruleset: {}", ms(anchor)),
                target.into(),
            ));
        }
        anyhow::Ok(())
    })?;
    std::thread::sleep(Duration::from_secs(2));
    rows.insert(
        0,
        (
            "helper idle RSS (fresh start)".into(),
            rss_with_parts(start_rss, start_parts),
            "-".into(),
            "< 15 MB".into(),
        ),
    );
    let helper_rss = env.helper_pid().map(palisade_tests::rss_kib).unwrap_or(0);
    let helper_parts = env
        .helper_pid()
        .map(palisade_tests::rss_parts_kib)
        .unwrap_or_default();
    let polkit_rss = pid_of_comm(&env, "polkitd")
        .map(palisade_tests::rss_kib)
        .unwrap_or(0);
    let bus_rss = pid_of_comm(&env, "dbus-daemon")
        .map(palisade_tests::rss_kib)
        .unwrap_or(0);
    rows.push((
        "helper idle RSS (after the 10,000-rule apply)".into(),
        rss_with_parts(helper_rss, helper_parts),
        format!("polkitd {} / dbus-daemon {}", mib(polkit_rss), mib(bus_rss)),
        "< 15 MB".into(),
    ));
    if wanted("vm") {
        rows.extend(rt.block_on(vm_and_console_rows(&env))?);
    }
    Ok(rows)
}

/// Networks in the benchmark's list.
const LIST_ENTRIES: usize = 1_000_000;

/// A local address inside the benchmark's list: connections to it prove the list is looked up
/// on the path the measured connections take.
const LISTED: Ipv4Addr = Ipv4Addr::new(127, 66, 0, 1);

/// The benchmark's list: `LIST_ENTRIES` networks, the last of them the one holding `LISTED`.
fn bench_list() -> String {
    let mut list = list_text(LIST_ENTRIES - 1, 0);
    list.push_str("127.66.0.0/24\n");
    list
}

/// `n` non-adjacent /28 networks (none merge, so the kernel holds `n` intervals), starting at
/// the `offset`-th one.
fn list_text(n: usize, offset: usize) -> String {
    changed_list_text(n, offset, usize::MAX, 0)
}

/// [`list_text`] with every `every`-th network (counting from `every / 2 + phase`) replaced by
/// a smaller one inside it: a change spread over the whole list, as a daily update's is.
fn changed_list_text(n: usize, offset: usize, every: usize, phase: usize) -> String {
    let mut out = String::with_capacity(n * 16);
    for i in offset..offset + n {
        let (a, b, c, d) = (
            11 + (i >> 19),
            (i >> 11) & 255,
            (i >> 3) & 255,
            (i & 7) * 32,
        );
        if every != usize::MAX && i % every == every / 2 + phase {
            out.push_str(&format!("{a}.{b}.{c}.{}/30\n", d + 4));
        } else {
            out.push_str(&format!("{a}.{b}.{c}.{d}/28\n"));
        }
    }
    out
}

/// Peak resident memory of `pid` so far (VmHWM), KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A million-network list: import (parse and store), loading it when a policy names it, status
/// and an unrelated apply beside it, and replacing it with a version 1 % different — next to
/// `nft -f` loading the same list as one set.
async fn blocklist_rows() -> Result<Vec<Row>> {
    let env = TestEnv::start().context("starting the blocklist bench environment")?;
    let conn = zbus::connection::Builder::address(env.bus_address())
        .build()
        .await?;
    let lists = palisade_dbus::proxy::BlocklistsProxy::new(&conn).await?;
    let policy = PolicyProxy::new(&conn).await?;
    let helper = env.helper_pid().context("no helper")?;
    let netns = PathBuf::from(format!("/run/netns/{}", env.netns()));
    let list = env.write_file("big.netset", bench_list())?;
    // The small set the stall probe inserts into, made while no big set exists (nft reads every
    // set element before it acts).
    for args in [
        &["add", "table", "inet", PROBE_TABLE][..],
        &[
            "add",
            "set",
            "inet",
            PROBE_TABLE,
            PROBE_SET,
            "{ type ipv4_addr; flags timeout; }",
        ][..],
    ] {
        let out = env.nft(args);
        anyhow::ensure!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let with_list = |port: u16| {
        format!(
            "[[blocklist]]\nname = \"big\"\nimported = true\n\n[[host_rule]]\naction = \"drop\"\n\
             blocklist = \"big\"\n\n[[host_rule]]\naction = \"drop\"\ndestination = \"192.0.2.1\"\n\
             proto = \"tcp\"\nports = {port}\n"
        )
    };
    let without_list = |port: u16| {
        format!(
            "[[host_rule]]\naction = \"drop\"\ndestination = \"192.0.2.1\"\nproto = \"tcp\"\n\
             ports = {port}\n"
        )
    };
    let mut rows = Vec::new();

    // An unrelated apply before any list exists: the baseline for the same apply beside it.
    let mut plain = Vec::new();
    for port in 0..RUNS as u16 {
        let base = policy.get().await?.0;
        let t = Instant::now();
        policy
            .apply(without_list(7000 + port).as_bytes(), base, 0, Client::Other)
            .await?;
        plain.push(t.elapsed());
    }

    let file = std::fs::File::open(&list)?;
    let t = Instant::now();
    lists
        .import("big", zbus::Fd::from(&file), "netset", false, false)
        .await?;
    let import = t.elapsed();
    // Palisade's table as it is without the list, copied into a namespace of its own: the
    // anchor that tells the list's own cost, measured round for round beside it below.
    let without_list_table = env.nft(&["list", "table", "inet", "palisade"]);
    anyhow::ensure!(
        without_list_table.status.success(),
        "nft list table: {}",
        String::from_utf8_lossy(&without_list_table.stderr)
    );
    let reachable_before = connects(&netns, LISTED)?;

    let base = policy.get().await?.0;
    let probe = Inserter::start(&netns)?;
    let t = Instant::now();
    policy
        .apply(with_list(8000).as_bytes(), base, 0, Client::Other)
        .await?;
    let load = t.elapsed();
    let helper_stalls = probe.finish()?;
    let peak = peak_kib(helper);

    // The anchor: nft -f of the same list as one interval set, with its peak memory.
    let mut anchor_script = String::from(
        "table inet anchor {\n set big { type ipv4_addr; flags interval; elements = {\n",
    );
    anchor_script.push_str(&bench_list().replace('\n', ",\n"));
    anchor_script.push_str("1.1.1.1 }\n }\n}\n");
    let anchor_file = env.write_file("anchor-list.nft", anchor_script)?;
    let probe = Inserter::start(&netns)?;
    let t = Instant::now();
    let out = env.run_as(
        None,
        &[
            "/usr/bin/time",
            "-f",
            "%M",
            "nft",
            "-f",
            &anchor_file.to_string_lossy(),
        ],
    );
    let anchor = t.elapsed();
    let anchor_stalls = probe.finish()?;
    anyhow::ensure!(
        out.status.success(),
        "the anchor nft -f failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anchor_kib: u64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let _ = env.nft(&["delete", "table", "inet", "anchor"]);
    rows.push((
        format!("import {LIST_ENTRIES} CIDRs from a descriptor: parse + store, then load on apply"),
        format!("{} + {} = {}", ms(import), ms(load), ms(import + load)),
        format!("nft -f of the same list: {}", ms(anchor)),
        "< 5 s".into(),
    ));
    rows.push((
        "peak RSS during import and load (helper; no child process carries data)".into(),
        mib(peak),
        format!("nft -f: {}", mib(anchor_kib)),
        "< 250 MB".into(),
    ));
    rows.push((
        "longest stall of a small insert (4 addresses, timeout set, netlink, every ~5 ms) while \
         the 1M list loads: max / p99"
            .into(),
        stalls(&helper_stalls),
        format!("while nft -f loads it: {}", stalls(&anchor_stalls)),
        "< 300 ms".into(),
    ));

    // The same connections with the list live: the host rule naming it sees every packet the
    // host sends, and asks the list's unlisted set first (the million-entry sets are searched
    // for an address once a second), as the refused listed address shows.
    let refused_after = !connects(&netns, LISTED)?;
    // The anchors run beside it in namespaces of their own, round for round with the measured
    // one, so that the machine's drift over the minutes between measurements (tens of percent
    // here) does not pass for a difference: no rules at all, connection tracking alone (one
    // `ct state` rule), and a linear chain of 10,000 rules that every packet walks to the end.
    let bare = Netns::create("bench-bare")?;
    let tracked = Netns::create("bench-ct")?;
    let linear = Netns::create("bench-linear")?;
    let unlisted = Netns::create("bench-palisade")?;
    load_output_chain(&env, &tracked, "  ct state established,related accept\n")?;
    load_output_chain(&env, &linear, &linear_rules())?;
    load_table(&env, &unlisted, &without_list_table.stdout)?;
    let paths: Vec<PathBuf> = [&bare, &tracked, &linear, &unlisted]
        .iter()
        .map(|ns| PathBuf::from(format!("/run/netns/{}", ns.name())))
        .chain([netns.clone()])
        .collect();
    let costs = interleaved_costs(&paths)?;
    let [no_rules, conntrack_only, linear_cost, palisade_rules, with_list_cost] = costs[..] else {
        anyhow::bail!("{} costs for 5 namespaces", costs.len());
    };
    rows.push((
        format!(
            "per-connection cost (TCP connect + accept + close over loopback, CPU time, median \
             of {COST_ROUNDS} rounds of {COST_CONNECTIONS}, each round beside one of every \
             anchor), 1M list named by a host rule"
        ),
        format!(
            "{} ({:+.1} % over no rules, {:+.1} % over connection tracking alone, {:+.1} % over \
             Palisade's rules without the list)",
            us(with_list_cost),
            percent(with_list_cost, no_rules),
            percent(with_list_cost, conntrack_only),
            percent(with_list_cost, palisade_rules)
        ),
        format!(
            "no rules: {}; connection tracking alone (one `ct state` rule): {} ({:+.1} %); \
             10,000-rule linear chain: {} ({:+.1} %); Palisade's rules without the list (its \
             table before the load, copied): {} ({:+.1} %); listed {LISTED} connects before the \
             load: {reachable_before}, refused after: {refused_after}",
            us(no_rules),
            us(conntrack_only),
            percent(conntrack_only, no_rules),
            us(linear_cost),
            percent(linear_cost, no_rules),
            us(palisade_rules),
            percent(palisade_rules, no_rules),
        ),
        "<= 5 % over no rules".into(),
    ));

    let helper_proxy = palisade_dbus::proxy::HelperProxy::new(&conn).await?;
    let vms = palisade_dbus::proxy::VmsProxy::new(&conn).await?;
    let mut status = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        helper_proxy.status().await?;
        vms.list().await?;
        status.push(t.elapsed());
    }
    rows.push((
        "status + VM list with the 1M list live (median of 20)".into(),
        ms(median(&mut status)),
        "before the engine split: 91 s".into(),
        "< 20 ms".into(),
    ));

    let mut beside = Vec::new();
    for port in 0..RUNS as u16 {
        let base = policy.get().await?.0;
        let t = Instant::now();
        policy
            .apply(with_list(9000 + port).as_bytes(), base, 0, Client::Other)
            .await?;
        beside.push(t.elapsed());
    }
    rows.push((
        format!("apply of an unrelated change, 1M list live (median of {RUNS})"),
        ms(median(&mut beside)),
        format!(
            "the same apply without the list: {}",
            ms(median(&mut plain))
        ),
        "same as without".into(),
    ));

    // A new version with 1 % of the networks replaced, spread over the whole list (10,000
    // out, 10,000 in): the helper parses and stores it, keeps the difference, and puts it in
    // the overlay sets beside the list's slices, one transaction per family. Then the daily
    // update after it: another 1 % (the first changes undone and as many new ones), which the
    // overlay takes by its own difference. The overlay part is what the helper logs for it.
    for (phase, label) in [
        (0, "a version 1 % different (20,000 ranges changed)"),
        (
            1,
            "the next version, another 1 % different (40,000 ranges changed)",
        ),
    ] {
        let changed = changed_list_text(LIST_ENTRIES - 1, 0, 100, phase) + "127.66.0.0/24\n";
        let changed_file = env.write_file(&format!("big-changed-{phase}.netset"), changed)?;
        let file = std::fs::File::open(&changed_file)?;
        let log_before = env.helper_log().len();
        let t = Instant::now();
        lists
            .import("big", zbus::Fd::from(&file), "netset", false, false)
            .await?;
        let whole = t.elapsed();
        rows.push((
            format!("replace the 1M list by {label}, until enforced"),
            replaced(&env, log_before, whole),
            "loading the list whole: see the import row".into(),
            "< 300 ms".into(),
        ));
    }
    rows.push(url_refresh_row(&env, &lists, &netns).await?);
    let peak = peak_kib(helper);
    rows.push((
        "peak RSS after the replacement (helper)".into(),
        mib(peak),
        "-".into(),
        "< 250 MB".into(),
    ));
    Ok(rows)
}

/// How the helper put a new version of list `big` in place, from what it logged after
/// `log_before`: by the overlay's difference (and how long its transactions took) or reloaded.
fn replaced(env: &TestEnv, log_before: usize, whole: Duration) -> String {
    let log = env.helper_log();
    let new_lines = log.get(log_before..).unwrap_or_default();
    if new_lines.contains("ranges of list big into set") {
        return format!("{} (reloaded: the difference was not used)", ms(whole));
    }
    let overlay: Vec<Duration> = new_lines
        .lines()
        .filter(|l| l.contains("updated list big in place in one transaction"))
        .filter_map(|l| parse_debug_duration(l.rsplit(" in ").next()?))
        .collect();
    format!(
        "{} in all; the overlay transactions ({}, one per family, with the record written \
         before and after): {}",
        ms(whole),
        overlay.len(),
        ms(overlay.iter().sum::<Duration>())
    )
}

/// Port of the bench's HTTP server, in the helper's namespace.
const HTTP_PORT: u16 = 8471;

/// The daily update of the 1M list as it usually comes, from its URL (`Refresh`): another 1 %
/// different, served by a local HTTP server (Python's `http.server` in the helper's namespace)
/// and read as it downloads. The list's source is first switched to that URL with the version
/// it holds (nothing is loaded for that: the contents are the same).
async fn url_refresh_row(
    env: &TestEnv,
    lists: &palisade_dbus::proxy::BlocklistsProxy<'_>,
    netns: &Path,
) -> Result<Row> {
    let version = |phase| changed_list_text(LIST_ENTRIES - 1, 0, 100, phase) + "127.66.0.0/24\n";
    let served = env.write_file("big-served.netset", version(1))?;
    let folder = served.parent().context("a served file's folder")?;
    let mut server = env.spawn_http_server(HTTP_PORT, folder)?;
    let row = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !in_netns(netns, || {
            Ok(TcpStream::connect((Ipv4Addr::LOCALHOST, HTTP_PORT)).is_ok())
        })? {
            anyhow::ensure!(Instant::now() < deadline, "the HTTP server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        let url = format!("http://127.0.0.1:{HTTP_PORT}/big-served.netset");
        lists
            .import_url("big", &url, 0, "netset", false, false)
            .await?;
        // The next version, dated a minute ahead: the server answers the conditional request
        // with it, not with 304 (its dates have whole seconds).
        std::fs::write(&served, version(2))?;
        std::fs::File::options()
            .write(true)
            .open(&served)?
            .set_modified(std::time::SystemTime::now() + Duration::from_secs(60))?;
        let log_before = env.helper_log().len();
        let t = Instant::now();
        lists.refresh("big").await?;
        let whole = t.elapsed();
        anyhow::Ok((
            "refresh the 1M list from its URL, another 1 % different (40,000 ranges changed), \
             until enforced (a local HTTP server; the download is read as it arrives)"
                .to_owned(),
            replaced(env, log_before, whole),
            "the same change from a file: see the rows above".into(),
            "< 300 ms".into(),
        ))
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    row
}

/// A `Debug`-printed duration as the helper logs it (`412.5ms`, `3.2s`, `87µs`).
fn parse_debug_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "µs" => value / 1e6,
        "ns" => value / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Read latency idle and under the hardening issue's load (50 readers, 5 writers), on a fresh
/// helper.
fn load_rows() -> Result<Vec<Row>> {
    use palisade_tests::load::{run, Load};
    let env = TestEnv::start().context("starting the load bench environment")?;
    let idle = run(
        &env,
        Load {
            readers: 1,
            writers: 0,
            duration: Duration::from_secs(10),
        },
    )?;
    // The same readers without writers: what the applies add to a read, as opposed to what 50
    // clients asking polkit at once cost by themselves.
    let readers_only = run(
        &env,
        Load {
            readers: 50,
            writers: 0,
            duration: Duration::from_secs(20),
        },
    )?;
    let busy = run(
        &env,
        Load {
            readers: 50,
            writers: 5,
            duration: Duration::from_secs(30),
        },
    )?;
    let rss = env.helper_pid().map(palisade_tests::rss_kib).unwrap_or(0);
    Ok(vec![
        (
            "read latency (Status, Get, History, Vms.List) under 50 readers + 5 writers, p50 / p99"
                .into(),
            format!(
                "{} / {} ({} reads, {} applies, {} conflicts, {} errors)",
                ms(busy.read_percentile(50.0)),
                ms(busy.read_percentile(99.0)),
                busy.reads.len(),
                busy.applied.len(),
                busy.conflicts,
                busy.read_errors.len() + busy.apply_errors.len()
            ),
            format!(
                "50 readers, no writers: {} / {}; one reader alone: {} / {}",
                ms(readers_only.read_percentile(50.0)),
                ms(readers_only.read_percentile(99.0)),
                ms(idle.read_percentile(50.0)),
                ms(idle.read_percentile(99.0))
            ),
            "readers do not queue behind applies".into(),
        ),
        (
            "helper RSS after 30 s of that load".into(),
            mib(rss),
            "-".into(),
            "bounded".into(),
        ),
    ])
}

type Row = (String, String, String, String);

/// The table and set the stall probe inserts into (its own table: the helper owns `palisade`).
const PROBE_TABLE: &str = "palisade_probe";
const PROBE_SET: &str = "recent";

/// Small inserts into `PROBE_SET` every ~5 ms on a thread inside the test namespace, each timed
/// until the kernel acknowledged it (the kernel runs one nftables transaction at a time, so an
/// insert waits for whatever transaction is in progress), until `finish`.
struct Inserter {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<Duration>>>,
}

impl Inserter {
    fn start(netns: &Path) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let ns = std::fs::File::open(netns).with_context(|| format!("{}", netns.display()))?;
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || -> Result<Vec<Duration>> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            let mut socket = NftSocket::open()?;
            let set = SetRef::new(TableFamily::Inet, PROBE_TABLE, PROBE_SET)?;
            let mut batch = Batch::new();
            let mut times = Vec::new();
            let mut n: u32 = 0;
            while !stopped.load(Ordering::SeqCst) {
                let elements: Vec<Element> = (0..4)
                    .map(|_| {
                        n = n.wrapping_add(1);
                        let [_, _, c, d] = n.to_be_bytes();
                        Element::expiring(Ipv4Addr::new(198, 18, c, d), Duration::from_secs(60))
                    })
                    .collect();
                batch.add_elements(&set, elements);
                let t = Instant::now();
                socket.send(&mut batch)?;
                times.push(t.elapsed());
                batch.clear();
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(times)
        });
        Ok(Self { stop, thread })
    }

    fn finish(self) -> Result<Vec<Duration>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .map_err(|_| anyhow!("the insert probe panicked"))?
    }
}

/// "max X / p99 Y (n inserts)".
fn stalls(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    match sorted.last() {
        Some(max) => format!(
            "{} / {} ({} inserts)",
            ms(*max),
            ms(sorted[sorted.len() * 99 / 100]),
            sorted.len()
        ),
        None => "no insert finished".into(),
    }
}

/// Rounds of the per-connection measurement, and connections per round.
const COST_ROUNDS: usize = 7;
const COST_CONNECTIONS: u32 = 2000;

/// Runs `f` on a thread inside the network namespace at `netns` (a namespace is per thread).
fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = std::fs::File::open(netns).with_context(|| format!("{}", netns.display()))?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("a thread in the namespace panicked"))?
}

/// One round of the per-connection measurement: CPU time per TCP connection over loopback
/// inside the namespace, over `COST_CONNECTIONS`: connect to a local listener, accept, close
/// (the client with a reset, so no TIME_WAIT state piles up over the rounds). The clock is the
/// thread's own CPU time, not the wall: the cores are shared with whatever else runs, and
/// loopback's packet processing (both directions, every netfilter hook) runs on the sending
/// thread, in its system calls and the softirqs they end with (this kernel has no separate IRQ
/// time accounting).
fn connection_round(netns: &Path) -> Result<Duration> {
    in_netns(netns, || {
        // Every round on the same core: a thread moved between cores mid-round pays cold
        // caches the rounds beside it may not (measured here: the spread between rounds of
        // the same namespace halves).
        let last = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
        let mut cpus = nix::sched::CpuSet::new();
        cpus.set(last)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let to = listener.local_addr()?;
        let cpu = || -> Result<Duration> {
            let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)?;
            Ok(Duration::new(
                u64::try_from(t.tv_sec())?,
                u32::try_from(t.tv_nsec())?,
            ))
        };
        let started = cpu()?;
        for _ in 0..COST_CONNECTIONS {
            let client = TcpStream::connect(to)?;
            let (server, _) = listener.accept()?;
            reset_on_close(&client)?;
            drop(client);
            drop(server);
        }
        Ok(cpu()?.saturating_sub(started) / COST_CONNECTIONS)
    })
}

/// Makes closing `stream` send a reset: no TIME_WAIT state piles up over thousands of
/// connections.
fn reset_on_close(stream: &TcpStream) -> nix::Result<()> {
    nix::sys::socket::setsockopt(
        stream,
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
}

/// Whether a TCP connection to `addr` succeeds within a second (a listener on 0.0.0.0 answers
/// for every address of 127/8).
fn connects(netns: &Path, addr: Ipv4Addr) -> Result<bool> {
    in_netns(netns, move || {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        let to = SocketAddr::from((addr, listener.local_addr()?.port()));
        Ok(TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok())
    })
}

/// 10,000 rules, one address each, none matching loopback: every packet walks all of them.
fn linear_rules() -> String {
    let mut rules = String::new();
    for i in 0..10_000u32 {
        rules.push_str(&format!(
            "  ip daddr 10.{}.{}.{} drop\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    rules
}

/// Loads into `ns` a table whose output chain holds `rules` (nft text, one per line).
fn load_output_chain(env: &TestEnv, ns: &Netns, rules: &str) -> Result<()> {
    let script = format!(
        "table inet bench {{\n chain output {{\n  type filter hook output priority 0; policy \
         accept;\n{rules} }}\n}}\n"
    );
    load_table(env, ns, script.as_bytes())
}

/// Loads into `ns` a whole table (nft text).
fn load_table(env: &TestEnv, ns: &Netns, table: &[u8]) -> Result<()> {
    let file = env.write_file(&format!("{}.nft", ns.name()), table)?;
    let out = ns
        .command(&["nft", "-f", &file.to_string_lossy()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "loading the anchor table in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// [`connection_round`] in each namespace, one round in each in turn, `COST_ROUNDS` times; the
/// medians, in the order given.
fn interleaved_costs(namespaces: &[PathBuf]) -> Result<Vec<Duration>> {
    let mut rounds = vec![Vec::with_capacity(COST_ROUNDS); namespaces.len()];
    for _ in 0..COST_ROUNDS {
        for (ns, times) in namespaces.iter().zip(&mut rounds) {
            times.push(connection_round(ns)?);
        }
    }
    Ok(rounds.iter_mut().map(|t| median(t)).collect())
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// How much more `x` costs than `base`, in percent.
fn percent(x: Duration, base: Duration) -> f64 {
    (x.as_secs_f64() / base.as_secs_f64().max(f64::MIN_POSITIVE) - 1.0) * 100.0
}

/// VM start (call until QMP answers and the Spice port listens; guest boot excluded), next to
/// QEMU alone reaching its QMP greeting with the same kind of machine; then console tickets and
/// the whole "Open console" path until a real remote-viewer is connected.
async fn vm_and_console_rows(env: &TestEnv) -> Result<Vec<Row>> {
    let admin = |args: &[&str]| -> Result<()> {
        let out = env.palisadectl(Some(palisade_tests::ADMIN), args);
        anyhow::ensure!(
            out.status.success(),
            "palisadectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    let policy = |doc: &str| -> Result<()> {
        let file = env.write_file("bench-vm.toml", doc)?;
        admin(&["policy", "apply", &file.to_string_lossy()])
    };
    policy("[settings]\naccel = \"tcg\"\n")?;
    admin(&[
        "vm",
        "create",
        "work",
        "--disk-size",
        "16M",
        "--memory",
        "256M",
        "--cpus",
        "1",
    ])?;
    palisade_tests::install_guest_kernel(env, "work")?;
    policy(&palisade_tests::vm_policy("pal.stay=1", "\"pal-alice\""))?;
    let conn = zbus::connection::Builder::address(env.bus_address())
        .build()
        .await?;
    let vms = palisade_dbus::proxy::VmsProxy::new(&conn).await?;
    let mut starts = Vec::new();
    for _ in 0..VM_RUNS {
        let started = Instant::now();
        vms.start("work", palisade_dbus::types::RunMode::Ephemeral)
            .await?;
        starts.push(started.elapsed());
        vms.stop("work", true, 0).await?;
    }
    let qemu_alone = qemu_greeting_anchor()?;
    let mut rows = vec![(
        format!("VM start, TCG (median of {VM_RUNS})"),
        ms(median(&mut starts)),
        format!("QEMU alone to its QMP greeting: {}", ms(qemu_alone)),
        "< 500 ms (TCG)".into(),
    )];

    vms.start("work", palisade_dbus::types::RunMode::Ephemeral)
        .await?;
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/console_flood.py"));
    let out = env.run_as(
        Some(palisade_tests::ALICE),
        &["/usr/bin/python3", &tool.to_string_lossy(), "work", "20"],
    );
    let flood: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("console_flood output")?;
    rows.push((
        "OpenConsole call (median of 20, new QMP password each)".into(),
        format!("{} ms", flood["median_ms"]),
        "-".into(),
        "-".into(),
    ));
    // The 20 tickets above used up alice's burst; let the rate limit refill.
    tokio::time::sleep(Duration::from_secs(10)).await;
    if let Some(viewer) = viewer_connect_time(env, &vms).await? {
        rows.push((
            "Open console -> remote-viewer connected".into(),
            ms(viewer),
            "-".into(),
            "< 1 s".into(),
        ));
    }
    vms.stop("work", true, 0).await?;
    Ok(rows)
}

const VM_RUNS: usize = 20;

/// QEMU with the same kind of machine, no disks, until its QMP greeting arrives on stdout.
fn qemu_greeting_anchor() -> Result<Duration> {
    use std::io::BufRead;
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut child = std::process::Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "q35,accel=tcg",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-m",
                "256",
            ])
            .args([
                "-qmp",
                "stdio",
                "-spice",
                "port=5990,addr=127.0.0.1,disable-ticketing=on",
                "-device",
                "qxl-vga",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        times.push(started.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(median(&mut times))
}

/// `palisadectl console open work` as alice with a real remote-viewer on a private Xvfb, until
/// the VM reports the viewer's channels connected. `None` when no Xvfb could be started.
async fn viewer_connect_time(
    env: &TestEnv,
    vms: &palisade_dbus::proxy::VmsProxy<'_>,
) -> Result<Option<Duration>> {
    let Ok(xvfb) = palisade_tests::Xvfb::start() else {
        return Ok(None);
    };
    let display = xvfb.display().to_owned();
    let ctl = env.user_path(&env.bin_dir().join("palisadectl"));
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let out = env.run_as(
            Some(palisade_tests::ALICE),
            &[
                "env",
                &format!("DISPLAY={display}"),
                "NO_AT_BRIDGE=1",
                &ctl.to_string_lossy(),
                "console",
                "open",
                "work",
            ],
        );
        anyhow::ensure!(
            out.status.success(),
            "console open: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        loop {
            let connected = vms
                .list()
                .await?
                .iter()
                .any(|v| v.name == "work" && v.viewer_channels >= 2);
            if connected {
                times.push(started.elapsed());
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "the viewer never connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = env.run_as(
            None,
            &["pkill", "-u", palisade_tests::ALICE, "remote-viewer"],
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(Some(median(&mut times)))
}

/// What the rules of [`policy_with_rules`] look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One host each, all on the same port: neighbours merge into one rule with a set.
    Mergeable,
    /// One host each, neighbours on different ports: the compiler makes them a mark map.
    Hosts,
    /// A /24 network each, neighbours on different ports: a mark map, looked up by the address
    /// masked to /24.
    Networks,
    /// One host each on a range of 100 ports, neighbours on different ranges: too many ports
    /// for a hash map's elements, an interval map, replaced whole when a rule changes.
    Ranges,
    /// Like `Ranges`, dropping: an interval set of the rules looked up by one dropping rule.
    Drops,
}

/// A policy of `n` rules for one VM, to addresses 10.x.y.z (or networks) in turn: all to port
/// `port` for [`Shape::Mergeable`] (neighbours then share one rule), else alternately to
/// `port` and `port + 1` (no two neighbours alike). `changed` gives one rule another port.
pub(crate) fn policy_with_rules(
    n: usize,
    shape: Shape,
    port: u16,
    changed: Option<(usize, u16)>,
) -> String {
    let mut doc = String::from("[[vm]]\nname = \"work\"\nconsole = { users = [\"pal-alice\"] }\n");
    for i in 0..n {
        let port = match changed {
            Some((c, p)) if c == i => p,
            _ if shape == Shape::Mergeable => port,
            _ => port + (i % 2) as u16,
        };
        let destination = match shape {
            Shape::Networks => format!("10.{}.{}.0/24", (i >> 8) & 255, i & 255),
            _ => format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        };
        let ports = match shape {
            Shape::Ranges | Shape::Drops => format!("\"{port}-{}\"", port + 99),
            _ => port.to_string(),
        };
        let action = match shape {
            Shape::Drops => "drop",
            _ => "accept",
        };
        doc.push_str(&format!(
            "[[vm.rule]]\naction = \"{action}\"\ndestination = \"{destination}\"\nproto = \"tcp\"\nports = {ports}\n",
        ));
    }
    doc
}

/// Median time of `nft -f` loading the same ruleset (text form from the helper's preview), run
/// in the same namespace, replacing our table just like the helper's batch does.
async fn nft_anchor(env: &TestEnv, proxy: &PolicyProxy<'_>, doc: &str) -> Result<Duration> {
    let preview = proxy.preview(doc.as_bytes()).await?;
    let script = format!(
        "add table inet palisade\ndelete table inet palisade\n{}",
        preview.ruleset
    );
    let path = env.write_file("anchor.nft", script)?;
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = env.nft(&["-f", &path.to_string_lossy()]);
        times.push(started.elapsed());
        anyhow::ensure!(
            out.status.success(),
            "anchor nft failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(median(&mut times))
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Resident memory with what it is made of (see [`palisade_tests::rss_parts_kib`]).
fn rss_with_parts(total: u64, (anon, file): (u64, u64)) -> String {
    format!(
        "{} (heap and other anonymous {}, program and library pages {})",
        mib(total),
        mib(anon),
        mib(file)
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn pid_of_comm(env: &TestEnv, comm: &str) -> Option<u32> {
    env.netns_pids().into_iter().find_map(|pid| {
        let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (c.trim() == comm)
            .then(|| u32::try_from(pid).ok())
            .flatten()
    })
}

fn print_table(rows: &[(String, String, String, String)]) {
    println!("\n| measurement | Palisade | anchor (same run) | target |");
    println!("|---|---|---|---|");
    for (what, value, anchor, target) in rows {
        println!("| {what} | {value} | {anchor} | {target} |");
    }
}

/// The VM whose DNS the DNS rows measure.
const DNS_VM_USER: &str = "palisade-vm-work";

fn dns_policy(with_list: bool) -> String {
    let list = if with_list {
        "[[blocklist]]\nname = \"bench\"\nimported = true\n[[host_rule]]\naction = \"drop\"\nblocklist = \"bench\"\n"
    } else {
        ""
    };
    format!(
        "{list}[[vm]]\nname = \"work\"\ndns = true\ndefault = \"reject\"\n[[vm.rule]]\naction = \"accept\"\n\
         destination = \"allowed.test\"\nproto = \"tcp\"\nports = 80\n[settings.dns]\nttl_floor_seconds = 60\n"
    )
}

fn dns_probe(env: &TestEnv, user: Option<&str>, args: &[&str]) -> Result<serde_json::Value> {
    let tool = env.user_path(&palisade_tests::workspace_dir().join("tests/tools/dns_probe.py"));
    let mut argv = vec!["python3".to_owned(), tool.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let out = env.run_as_timeout(user, &argv, Duration::from_secs(600));
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "dns_probe {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn palisadectl_ok(env: &TestEnv, args: &[&str]) -> Result<Vec<u8>> {
    let out = env.palisadectl(Some(palisade_tests::ADMIN), args);
    if !out.status.success() {
        return Err(anyhow!(
            "palisadectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// The admission times of the admitted questions after `after_seq`, and the last seq seen.
fn admission_times(env: &TestEnv, after_seq: Option<u64>) -> Result<(Vec<Duration>, u64)> {
    let out = palisadectl_ok(env, &["--json", "dns", "log", "--vm", "work"])?;
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out)?;
    let mut last = after_seq.unwrap_or(0);
    let mut times = Vec::new();
    for e in &events {
        let seq = e["seq"].as_u64().unwrap_or(0);
        last = last.max(seq);
        if after_seq.is_some_and(|a| seq <= a) || e["outcome"] != "admitted" {
            continue;
        }
        times.push(Duration::from_micros(e["admit_us"].as_u64().unwrap_or(0)));
    }
    Ok((times, last))
}

fn percentiles(times: &[Duration]) -> String {
    if times.is_empty() {
        return "no admissions".into();
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    // One unit for both, so the two read side by side: ms once either reaches a millisecond.
    let (p50, p99) = (at(0.5), at(0.99));
    let unit = if p99 >= Duration::from_millis(1) {
        ms
    } else {
        us
    };
    format!("{} / {} ({} answers)", unit(p50), unit(p99), sorted.len())
}

fn dns_rows() -> Result<Vec<Row>> {
    let lab = palisade_tests::dns::DnsLab::start().context("starting the DNS lab")?;
    let env = &lab.env;
    let policy = env.write_file("dns.toml", dns_policy(false))?;
    palisadectl_ok(env, &["policy", "apply", &policy.to_string_lossy()])?;
    let mut rows = Vec::new();

    let rotate = dns_probe(env, Some(DNS_VM_USER), &["rotate", "1000", "80"])?;
    let misses = rotate["misses"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(usize::MAX);
    rows.push((
        "misses over 1,000 rotating answers (connect straight after each)".into(),
        format!("{misses} of {} answers", rotate["answers"]),
        format!("{} lookups failed", rotate["failed_lookups"]),
        "0".into(),
    ));
    let (idle, mark) = admission_times(env, None)?;
    let idle = percentiles(&idle);

    let through = dns_probe(env, Some(DNS_VM_USER), &["qps", "5", "other.test"])?;
    let admitted = dns_probe(env, Some(DNS_VM_USER), &["qps", "5", "allowed.test"])?;
    let direct = dns_probe(
        env,
        None,
        &["qps", "5", "other.test", "--server", "10.53.0.53"],
    )?;
    let (through, admitted, direct) = (
        through["per_second"].as_f64().unwrap_or(0.0),
        admitted["per_second"].as_f64().unwrap_or(0.0),
        direct["per_second"].as_f64().unwrap_or(0.0),
    );
    rows.push((
        "questions/s through the forwarder (32 outstanding; a name no rule follows / allowed.test, admitted)".into(),
        format!(
            "{through:.0} / {admitted:.0} ({:.2}x / {:.2}x)",
            through / direct.max(1.0),
            admitted / direct.max(1.0)
        ),
        format!("straight to the server: {direct:.0}"),
        ">= 0.8x".into(),
    ));
    let (_, mark) = admission_times(env, Some(mark))?;

    // While a million-entry list loads: the list is imported first (stored only), then a policy
    // naming it is applied in the background while the VM keeps asking.
    let list = env.write_file("bench-list.txt", bench_list())?;
    palisadectl_ok(
        env,
        &["blocklist", "import", "bench", &list.to_string_lossy()],
    )?;
    let with_list = env.write_file("dns-list.toml", dns_policy(true))?;
    let mut apply = env.spawn_as(
        Some(palisade_tests::ADMIN),
        &[
            env.user_path(&env.bin_dir().join("palisadectl"))
                .to_string_lossy()
                .into_owned(),
            "policy".into(),
            "apply".into(),
            with_list.to_string_lossy().into_owned(),
        ],
    )?;
    let started = Instant::now();
    let mut misses = 0;
    let mut asked = 0;
    let apply_took = loop {
        let during = dns_probe(env, Some(DNS_VM_USER), &["rotate", "50", "80"])?;
        misses += during["misses"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(usize::MAX);
        asked += 50;
        if apply.try_wait()?.is_some() {
            break started.elapsed();
        }
    };
    let applied = apply.wait_with_output()?;
    let (loading, _) = admission_times(env, Some(mark))?;
    rows.push((
        "answer -> addresses in the kernel, p50 / p99".into(),
        format!(
            "idle {idle}; while a 1M list loads {}",
            percentiles(&loading)
        ),
        format!(
            "the 1M apply took {} ({}); {asked} questions meanwhile, {misses} misses",
            ms(apply_took),
            if applied.status.success() {
                "ok"
            } else {
                "FAILED"
            },
        ),
        "p99 < 5 ms idle, < 50 ms while loading".into(),
    ));
    Ok(rows)
}
