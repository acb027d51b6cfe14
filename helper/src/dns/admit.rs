//! Putting answered addresses into the kernel's answers sets, before the answer is sent.
//!
//! One thread owns a netlink socket and takes admissions in order; each is one transaction
//! (every address of one answer, in every set its name feeds, with its timeout) and the caller
//! waits for the kernel's acknowledgement. Only then does the forwarder send the answer on, so
//! the guest never holds an address the firewall does not. A refused transaction (a set the
//! newest generation removed, a full set) admits nothing and the forwarder answers SERVFAIL.
//!
//! The thread exists because netlink calls block, and while the kernel loads a big list (its
//! transactions are serialized) an admission may wait a fraction of a second: that must stall
//! neither the runtime's two workers nor the other VMs' questions for longer than it takes.

use palisade_nfnetlink::{Batch, Element, NftSocket, SetRef, TableFamily};
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Most admissions waiting for the thread; beyond it a question is answered SERVFAIL at once.
const QUEUE: usize = 1024;

/// One address for one set, for this long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The answers set, in our table.
    pub set: String,
    /// The address.
    pub address: IpAddr,
    /// How long it stays.
    pub timeout: Duration,
}

/// Why an admission did not land.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    /// The kernel refused the transaction.
    #[error("the kernel refused the addresses: {0}")]
    Refused(String),
    /// Too many admissions are waiting.
    #[error("too many answers are waiting for the firewall")]
    Busy,
    /// The admission thread is gone (only at exit).
    #[error("the helper is stopping")]
    Stopped,
}

type Request = (Vec<Admission>, oneshot::Sender<Result<(), AdmitError>>);

/// The handle to the admission thread.
#[derive(Debug, Clone)]
pub struct Admitter {
    requests: mpsc::SyncSender<Request>,
}

impl Admitter {
    /// Starts the thread for `table` (an `inet` table).
    pub fn start(table: &'static str) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::sync_channel::<Request>(QUEUE);
        std::thread::Builder::new()
            .name("dns-admit".into())
            .spawn(move || serve(table, &queue))?;
        Ok(Self { requests })
    }

    /// Admits `all` in one transaction; returns once the kernel has acknowledged it.
    pub async fn admit(&self, all: Vec<Admission>) -> Result<(), AdmitError> {
        if all.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        self.requests.try_send((all, done)).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => AdmitError::Busy,
            mpsc::TrySendError::Disconnected(_) => AdmitError::Stopped,
        })?;
        outcome.await.map_err(|_| AdmitError::Stopped)?
    }
}

fn serve(table: &'static str, queue: &mpsc::Receiver<Request>) {
    let mut socket: Option<NftSocket> = None;
    let mut batch = Batch::new();
    while let Ok((all, done)) = queue.recv() {
        let result = admit(table, &mut socket, &mut batch, &all);
        if result.is_err() {
            // A fresh socket next time: a broken one must not refuse every later answer.
            socket = None;
        }
        let _ = done.send(result);
    }
}

fn admit(
    table: &str,
    socket: &mut Option<NftSocket>,
    batch: &mut Batch,
    all: &[Admission],
) -> Result<(), AdmitError> {
    let refused = |e: &dyn std::fmt::Display| AdmitError::Refused(e.to_string());
    if socket.is_none() {
        *socket = Some(NftSocket::open().map_err(|e| refused(&e))?);
    }
    let Some(s) = socket.as_mut() else {
        return Err(AdmitError::Stopped);
    };
    batch.clear();
    let mut sets: Vec<&str> = all.iter().map(|a| a.set.as_str()).collect();
    sets.sort_unstable();
    sets.dedup();
    for set in sets {
        let target = SetRef::new(TableFamily::Inet, table, set).map_err(|e| refused(&e))?;
        let elements: Vec<Element> = all
            .iter()
            .filter(|a| a.set == set)
            .map(|a| Element::expiring(a.address, a.timeout))
            .collect();
        batch.refresh_elements(&target, &elements);
    }
    s.send(batch).map_err(|e| refused(&e))
}
