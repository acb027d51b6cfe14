//! The lab rows: TCP throughput and per-connection latency between two guests across the
//! helper's bridge with the port guards in place, next to the same with `table bridge palisade`
//! deleted (the guards' own cost); and a connection through a VM's DNAT (outside → NAT address →
//! guest), next to a connection from the same outside to a listener on the same host address
//! (no NAT, no bridge). Guests are namespaces on veth ports (`palisade_tests::lab`); every
//! client and server is a thread of this process inside its namespace.

use super::{ms, palisadectl_ok, us, Row};
use anyhow::{anyhow, Context as _, Result};
use palisade_tests::lab::Lab;
use palisade_tests::TestEnv;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Rounds of the throughput measurement and how long each sends.
const THROUGHPUT_ROUNDS: usize = 3;
const THROUGHPUT_TIME: Duration = Duration::from_secs(2);
/// Connections timed per latency row.
const CONNECTIONS: usize = 1000;

const POLICY: &str = r#"
[[network]]
name = "lab"
subnet = "10.77.0.0/24"
address = "10.77.0.1"

[[vm]]
name = "trap"
network = "bridge"
bridge = "lab"
address = "10.77.0.10"
mac = "52:54:00:00:00:10"
default = "drop"
[vm.nat]
address = "192.0.2.10"
[[vm.nat.forward]]
proto = "tcp"
port = 2222
to_port = 22

[[vm]]
name = "plain"
network = "bridge"
bridge = "lab"
address = "10.77.0.11"
mac = "52:54:00:00:00:11"
default = "drop"
"#;

pub fn lab_rows(env: &TestEnv) -> Result<Vec<Row>> {
    let file = env.write_file("lab.toml", POLICY)?;
    palisadectl_ok(env, &["policy", "apply", &file.to_string_lossy()])?;
    let lab = Lab::wire(
        env,
        &[
            ("trap", "10.77.0.10", "52:54:00:00:00:10"),
            ("plain", "10.77.0.11", "52:54:00:00:00:11"),
        ],
    )?;
    let path = |ns: Option<&palisade_tests::Netns>| -> Result<PathBuf> {
        let ns = ns.ok_or_else(|| anyhow!("a lab guest is missing"))?;
        Ok(PathBuf::from(format!("/run/netns/{}", ns.name())))
    };
    let (trap, plain) = (path(lab.guest("trap"))?, path(lab.guest("plain"))?);
    let outside = PathBuf::from(format!("/run/netns/{}", lab.outside.name()));
    let host = PathBuf::from(format!("/run/netns/{}", env.netns()));

    let sink: SocketAddr = "10.77.0.11:5001".parse()?;
    let echo: SocketAddr = "10.77.0.11:5002".parse()?;
    serve(&plain, sink, Mode::Sink)?;
    serve(&plain, echo, Mode::Echo)?;
    serve(&trap, "10.77.0.10:22".parse()?, Mode::Echo)?;
    serve(&host, "192.0.2.10:2223".parse()?, Mode::Echo)?;

    let guarded_rate = throughput(&trap, sink)?;
    let guarded_times = connection_times(&trap, echo)?;
    let dnat = connection_times(&outside, "192.0.2.10:2222".parse()?)?;
    let direct = connection_times(&outside, "192.0.2.10:2223".parse()?)?;
    let out = env.nft(&["delete", "table", "bridge", "palisade"]);
    if !out.status.success() {
        return Err(anyhow!(
            "deleting the port guards: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let open_rate = throughput(&trap, sink)?;
    let open_times = connection_times(&trap, echo)?;
    drop(lab);

    Ok(vec![
        (
            format!(
                "lab: TCP throughput guest to guest across the bridge, port guards on \
                 (median of {THROUGHPUT_ROUNDS} × {} s)",
                THROUGHPUT_TIME.as_secs()
            ),
            format!("{guarded_rate:.0} MB/s"),
            format!("port guards off: {open_rate:.0} MB/s"),
            "-".into(),
        ),
        (
            format!(
                "lab: connection guest to guest (connect, 1-byte echo, close), port guards on, \
                 {CONNECTIONS} connections"
            ),
            p50_p99(&guarded_times),
            format!("port guards off: {}", p50_p99(&open_times)),
            "-".into(),
        ),
        (
            format!(
                "lab: connection from outside through the VM's DNAT (192.0.2.10:2222 → \
                 10.77.0.10:22), {CONNECTIONS} connections"
            ),
            p50_p99(&dnat),
            format!(
                "to a listener on the host's own 192.0.2.10 (no NAT, no bridge): {}",
                p50_p99(&direct)
            ),
            "-".into(),
        ),
    ])
}

#[derive(Clone, Copy)]
enum Mode {
    /// Reads and forgets everything.
    Sink,
    /// Sends back what it reads.
    Echo,
}

/// A server on `addr` in the namespace at `netns`, on a thread of its own that lives as long as
/// the bench; returns once it listens.
fn serve(netns: &Path, addr: SocketAddr, mode: Mode) -> Result<()> {
    let ns = std::fs::File::open(netns).with_context(|| format!("{}", netns.display()))?;
    let (ready, listening) = mpsc::channel();
    std::thread::spawn(move || {
        let bound = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(anyhow::Error::from)
            .and_then(|()| TcpListener::bind(addr).map_err(anyhow::Error::from));
        let listener = match bound {
            Ok(l) => {
                let _ = ready.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut buf = vec![0u8; 1 << 16];
        for mut conn in listener.incoming().map_while(Result::ok) {
            while let Ok(n) = conn.read(&mut buf) {
                let Some(data) = buf.get(..n).filter(|d| !d.is_empty()) else {
                    break;
                };
                if matches!(mode, Mode::Echo) && conn.write_all(data).is_err() {
                    break;
                }
            }
        }
    });
    listening
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| anyhow!("the server on {addr} did not start"))?
}

/// MB/s sent from the namespace at `netns` to the sink at `to`: the median of the rounds.
fn throughput(netns: &Path, to: SocketAddr) -> Result<f64> {
    super::in_netns(netns, move || {
        let mut rates = Vec::new();
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..THROUGHPUT_ROUNDS {
            let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
            let started = Instant::now();
            let mut sent = 0usize;
            while started.elapsed() < THROUGHPUT_TIME {
                stream.write_all(&chunk)?;
                sent += chunk.len();
            }
            stream.shutdown(Shutdown::Write)?;
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            rates.push(sent as f64 / started.elapsed().as_secs_f64() / 1e6);
        }
        rates.sort_by(f64::total_cmp);
        rates
            .get(rates.len() / 2)
            .copied()
            .ok_or_else(|| anyhow!("no throughput round"))
    })
}

/// Each of `CONNECTIONS` connections from the namespace at `netns` to the echo server at `to`:
/// connect, one byte there and back, close with a reset (no TIME_WAIT piles up).
fn connection_times(netns: &Path, to: SocketAddr) -> Result<Vec<Duration>> {
    super::in_netns(netns, move || {
        let mut times = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let started = Instant::now();
            let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
            stream.write_all(b"x")?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte)?;
            super::reset_on_close(&stream)?;
            drop(stream);
            times.push(started.elapsed());
        }
        Ok(times)
    })
}

/// "p50 / p99" of `times`, both in µs, or both in ms once the p99 reaches a millisecond.
fn p50_p99(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |p: f64| {
        let i = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
        sorted.get(i).copied().unwrap_or_default()
    };
    let (p50, p99) = (at(0.5), at(0.99));
    let unit = if p99 >= Duration::from_millis(1) {
        ms
    } else {
        us
    };
    format!("{} / {} (p50 / p99)", unit(p50), unit(p99))
}
