//! A load on the helper: many clients reading while a few apply policies, for a while. The
//! end-to-end test checks what must hold under it (no error but conflicts, no lost or mixed
//! generation, bounded memory); `make bench` reports the read latency next to an idle one.
//!
//! Each client has its own bus connection, as separate programs would. Writers apply documents
//! told apart by one port (the marker), each on the generation it last saw, so they race and some
//! lose with a conflict — which is the helper's answer to a stale base, not an error.

use crate::TestEnv;
use anyhow::{Context as _, Result};
use palisade_dbus::proxy::{HelperProxy, PolicyProxy, VmsProxy};
use palisade_dbus::types::Client;
use palisade_dbus::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much load, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub readers: usize,
    pub writers: usize,
    pub duration: Duration,
}

/// What happened under the load.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Every read's latency (Status, Policy.Get, History, Vms.List in turn).
    pub reads: Vec<Duration>,
    /// Reads that failed, with the error.
    pub read_errors: Vec<String>,
    /// Applies that succeeded: (generation, marker port of the document).
    pub applied: Vec<(u64, u16)>,
    /// Applies refused because another landed first.
    pub conflicts: usize,
    /// Applies that failed otherwise.
    pub apply_errors: Vec<String>,
}

impl LoadReport {
    /// The `p`-th percentile (0–100) of the read latencies.
    pub fn read_percentile(&self, p: f64) -> Duration {
        let mut sorted = self.reads.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }
}

/// A policy whose only rule drops `port` to a test address: the marker a writer's apply leaves.
pub fn marked_policy(port: u16) -> String {
    format!(
        "[[host_rule]]\naction = \"drop\"\ndestination = \"192.0.2.77\"\nproto = \"tcp\"\n\
         ports = {port}\ncomment = \"load marker\"\n"
    )
}

/// Runs `load` against `env`'s helper (on a runtime of its own) and reports.
pub fn run(env: &TestEnv, load: Load) -> Result<LoadReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(env.bus_address().to_owned(), load))
}

async fn connect(address: &str) -> Result<zbus::Connection> {
    zbus::connection::Builder::address(address)
        .build()
        .await
        .context("connecting to the test bus")
}

async fn run_async(address: String, load: Load) -> Result<LoadReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for i in 0..load.readers {
        let conn = connect(&address).await?;
        let stop = Arc::clone(&stop);
        readers.push(tokio::spawn(async move { read_loop(conn, i, stop).await }));
    }
    let mut writers = Vec::new();
    for w in 0..load.writers {
        let conn = connect(&address).await?;
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move { write_loop(conn, w, stop).await }));
    }
    tokio::time::sleep(load.duration).await;
    stop.store(true, Ordering::SeqCst);
    let mut report = LoadReport::default();
    for r in readers {
        let (reads, errors) = r.await.context("a reader panicked")??;
        report.reads.extend(reads);
        report.read_errors.extend(errors);
    }
    for w in writers {
        let (applied, conflicts, errors) = w.await.context("a writer panicked")??;
        report.applied.extend(applied);
        report.conflicts += conflicts;
        report.apply_errors.extend(errors);
    }
    report.applied.sort_unstable();
    Ok(report)
}

type Reads = (Vec<Duration>, Vec<String>);

async fn read_loop(conn: zbus::Connection, i: usize, stop: Arc<AtomicBool>) -> Result<Reads> {
    let helper = HelperProxy::new(&conn).await?;
    let policy = PolicyProxy::new(&conn).await?;
    let vms = VmsProxy::new(&conn).await?;
    let (mut times, mut errors) = (Vec::new(), Vec::new());
    let mut n = i;
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let outcome = match n % 4 {
            0 => helper.status().await.map(drop),
            1 => policy.get().await.map(drop),
            2 => policy.history().await.map(drop),
            _ => vms.list().await.map(drop),
        };
        times.push(t.elapsed());
        if let Err(e) = outcome {
            errors.push(e.to_string());
        }
        n += 1;
    }
    Ok((times, errors))
}

type Writes = (Vec<(u64, u16)>, usize, Vec<String>);

async fn write_loop(conn: zbus::Connection, w: usize, stop: Arc<AtomicBool>) -> Result<Writes> {
    let policy = PolicyProxy::new(&conn).await?;
    let (mut applied, mut conflicts, mut errors) = (Vec::new(), 0, Vec::new());
    let mut round: u16 = 0;
    while !stop.load(Ordering::SeqCst) {
        // Ports 10000 + 1000·writer + round tell every document apart.
        let marker = 10_000 + 1_000 * w as u16 + round % 1_000;
        round = round.wrapping_add(1);
        let base = match policy.get().await {
            Ok((generation, _)) => generation,
            Err(e) => {
                errors.push(format!("get: {e}"));
                continue;
            }
        };
        match policy
            .apply(marked_policy(marker).as_bytes(), base, 0, Client::Other)
            .await
        {
            Ok(a) => applied.push((a.generation, marker)),
            Err(Error::Conflict(_)) => conflicts += 1,
            Err(e) => errors.push(format!("apply: {e}")),
        }
    }
    Ok((applied, conflicts, errors))
}
