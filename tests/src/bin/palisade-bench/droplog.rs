//! The drop log rows: how long a logged packet takes to reach a follower's `Logged` signal;
//! a flood through the product's rate limit (every packet counted, the helper's CPU while it
//! logs); and how many entries a second the helper takes when nothing limits them (a bench
//! rule in a table of its own logs every packet to our group).

use super::{in_netns, ms, palisadectl_ok, percentiles, Row};
use anyhow::{anyhow, Result};
use futures_util::StreamExt;
use palisade_dbus::proxy::LogProxy;
use palisade_tests::TestEnv;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the bench's packets go: a host rule drops and logs them (port `LOGGED`); the bench's
/// own table logs every packet to `UNLIMITED`, which nothing drops.
const TARGET: &str = "127.0.0.99";
const LOGGED: u16 = 9_999;
const UNLIMITED: u16 = 9_998;
/// Samples of the packet-to-signal delay, spaced under the limit's rate.
const DELAY_SAMPLES: usize = 100;
/// Packets of the flood through the limit, and of the unlimited burst (under the ring's size,
/// so every entry the helper took can be counted afterwards).
const FLOOD: u64 = 100_000;
const BURST: u64 = 8_000;

const POLICY: &str = "[[host_rule]]\naction = \"drop\"\ndestination = \"127.0.0.99\"\n\
    proto = \"udp\"\nports = 9999\nlog = true\n";

/// The bench's own table: every UDP packet to `UNLIMITED` logged to the helper's group with the
/// prefix of host rule 1, with no limit (the product never logs without one).
const UNLIMITED_TABLE: &str = "table inet palisade_bench {\n\
    chain out { type filter hook output priority 10; policy accept;\n\
    udp dport 9998 log prefix \"palisade host rule=1 drop: \" group 27183\n}\n}\n";

pub async fn droplog_rows(env: &TestEnv) -> Result<Vec<Row>> {
    let policy = env.write_file("droplog.toml", POLICY)?;
    palisadectl_ok(env, &["policy", "apply", &policy.to_string_lossy()])?;
    let netns = PathBuf::from(format!("/run/netns/{}", env.netns()));
    let conn = zbus::connection::Builder::address(env.bus_address())
        .build()
        .await?;
    let log = LogProxy::new(&conn).await?;
    let mut signals = log.receive_logged().await?;
    log.follow("").await?;
    let mut rows = Vec::new();

    // The delay: one packet, then its signal.
    let mut delays = Vec::new();
    for _ in 0..DELAY_SAMPLES {
        let sent = Instant::now();
        send(&netns, LOGGED, 1)?;
        let deadline = sent + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let signal = tokio::time::timeout(left, signals.next())
                .await
                .map_err(|_| anyhow!("no Logged signal within 5 s"))?
                .ok_or_else(|| anyhow!("the signal stream ended"))?;
            let args = signal.args()?;
            if args.packets().iter().any(|p| p.destination_port == LOGGED) {
                delays.push(sent.elapsed());
                break;
            }
        }
        // Under 50 a second: the limit never decides which sample is logged.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    rows.push((
        format!("drop log: packet to Logged signal, p50 / p99 ({DELAY_SAMPLES} packets)"),
        percentiles(&delays).replace("answers", "packets"),
        "kernel flush 50 ms + the helper's gathering 100 ms".into(),
        "within 1 s".into(),
    ));

    // A flood through the limit.
    let counted = |counters: Vec<palisade_dbus::types::RuleCounter>| {
        counters
            .iter()
            .find(|c| c.rule.vm.is_empty() && c.rule.first_rule == 1)
            .map_or(0, |c| c.packets)
    };
    let helper = env.helper_pid().ok_or_else(|| anyhow!("no helper"))?;
    let before = counted(log.counters("").await?);
    let cpu_before = cpu_seconds(helper)?;
    let started = Instant::now();
    let since_ms = unix_ms();
    send(&netns, LOGGED, FLOOD)?;
    let flood_time = started.elapsed();
    // Until the last batch has been gathered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = cpu_seconds(helper)? - cpu_before;
    let wall = started.elapsed().as_secs_f64();
    let after = counted(log.counters("").await?);
    let logged = log
        .show("", since_ms, 10_000)
        .await?
        .iter()
        .filter(|p| p.destination_port == LOGGED)
        .count();
    rows.push((
        format!("drop log: flood of {FLOOD} packets through the limit: counted / logged"),
        format!("{} / {logged}", after - before),
        format!(
            "sent in {} ({:.0} packets/s); limit 50/s, burst 100",
            ms(flood_time),
            FLOOD as f64 / flood_time.as_secs_f64()
        ),
        "every packet counted".into(),
    ));
    rows.push((
        "drop log: helper CPU while the flood is logged".into(),
        format!("{:.1} % of one core", busy / wall * 100.0),
        format!("{:.3} s of CPU over {wall:.2} s", busy),
        "-".into(),
    ));

    // No limit: what the helper takes.
    let table = env.write_file("bench-log.nft", UNLIMITED_TABLE)?;
    let loaded = env.nft(&["-f", &table.to_string_lossy()]);
    if !loaded.status.success() {
        return Err(anyhow!(
            "loading the bench's logging table: {}",
            String::from_utf8_lossy(&loaded.stderr)
        ));
    }
    let cpu_before = cpu_seconds(helper)?;
    let since_ms = unix_ms();
    let started = Instant::now();
    send(&netns, UNLIMITED, BURST)?;
    let sent_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = cpu_seconds(helper)? - cpu_before;
    let taken: Vec<u64> = log
        .show("", since_ms, 10_000)
        .await?
        .iter()
        .filter(|p| p.destination_port == UNLIMITED)
        .map(|p| p.at_ms)
        .collect();
    let span = match (taken.first(), taken.last()) {
        (Some(first), Some(last)) if last > first => (last - first) as f64 / 1000.0,
        _ => sent_in.as_secs_f64(),
    };
    rows.push((
        format!("drop log: entries taken per second, unlimited ({BURST}-packet burst)"),
        format!(
            "{:.0} entries/s, {} of {BURST} lost",
            taken.len() as f64 / span.max(0.001),
            BURST - taken.len() as u64
        ),
        format!(
            "offered {:.0} packets/s; helper CPU {:.3} s",
            BURST as f64 / sent_in.as_secs_f64(),
            busy
        ),
        "-".into(),
    ));
    env.nft(&["delete", "table", "inet", "palisade_bench"]);
    Ok(rows)
}

/// Sends `count` one-byte UDP datagrams to `TARGET`:`port` from inside the namespace (a drop
/// refuses the send itself; it still counts).
fn send(netns: &std::path::Path, port: u16, count: u64) -> Result<()> {
    in_netns(netns, move || {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        for _ in 0..count {
            let _ = socket.send_to(b"x", (TARGET, port));
        }
        Ok(())
    })
}

/// CPU seconds (user and system) process `pid` has used.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<f64>()?)
    };
    // /proc counts in USER_HZ, which the kernel's ABI fixes at 100 on every architecture.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}
