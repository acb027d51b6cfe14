//! Talking to a VM's QEMU over QMP, through the `qapi` crate's typed commands and events.
//!
//! One `Monitor` per running VM. Its event stream is drained by a task that also delivers the
//! command replies (qapi multiplexes both on one socket), and forwards QEMU's own events —
//! SHUTDOWN, STOP, RESUME, RESET — to the supervisor, which turns them into VM states. When the
//! stream ends, QEMU is gone. Every command has a deadline: a wedged QEMU must not wedge the
//! helper.

use futures_util::StreamExt;
use qapi::futures::{QapiService, QmpStreamTokio};
use qapi::qmp;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::io::WriteHalf;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// How long one QMP command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

type Service = QapiService<QmpStreamTokio<WriteHalf<UnixStream>>>;

/// What the event task reports.
#[derive(Debug)]
pub enum MonitorEvent {
    /// A QEMU event.
    Qemu(Box<qmp::Event>),
    /// The monitor connection ended: QEMU exited (or closed it).
    Closed,
}

/// A connected QMP monitor.
pub struct Monitor {
    service: Service,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Monitor")
    }
}

/// A QMP failure, as a sentence.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QmpError(String);

impl Monitor {
    /// Connects to the socket, negotiates capabilities, and starts forwarding events to `tx`.
    pub async fn connect(
        path: &Path,
        tx: mpsc::UnboundedSender<MonitorEvent>,
    ) -> Result<Self, QmpError> {
        let connect = async {
            let negotiation = QmpStreamTokio::open_uds(path).await?;
            negotiation.negotiate().await
        };
        let stream = tokio::time::timeout(COMMAND_TIMEOUT, connect)
            .await
            .map_err(|_| QmpError("QEMU's monitor did not answer".into()))?
            .map_err(|e| QmpError(format!("cannot connect to QEMU's monitor: {e}")))?;
        let (service, mut events) = stream.into_parts();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(e) => {
                        let _ = tx.send(MonitorEvent::Qemu(Box::new(e)));
                    }
                    Err(e) => {
                        tracing::debug!("QMP stream error: {e}");
                        break;
                    }
                }
            }
            let _ = tx.send(MonitorEvent::Closed);
        });
        Ok(Self { service })
    }

    async fn run<C: qmp::QmpCommand>(&self, command: C) -> Result<C::Ok, QmpError> {
        let name = C::NAME;
        match tokio::time::timeout(COMMAND_TIMEOUT, self.service.execute(command)).await {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(e)) => Err(QmpError(format!("QEMU refused {name}: {e}"))),
            Err(_) => Err(QmpError(format!("QEMU did not answer {name} in time"))),
        }
    }

    /// The run state (`running`, `paused`, ...).
    pub async fn status(&self) -> Result<qmp::StatusInfo, QmpError> {
        self.run(qmp::query_status {}).await
    }

    /// Presses the ACPI power button.
    pub async fn powerdown(&self) -> Result<(), QmpError> {
        self.run(qmp::system_powerdown {}).await.map(drop)
    }

    /// Ends QEMU at once.
    pub async fn quit(&self) -> Result<(), QmpError> {
        self.run(qmp::quit {}).await.map(drop)
    }

    /// Resets the machine.
    pub async fn reset(&self) -> Result<(), QmpError> {
        self.run(qmp::system_reset {}).await.map(drop)
    }

    /// Sets the Spice password, disconnecting clients if `disconnect`.
    pub async fn set_spice_password(
        &self,
        password: &str,
        disconnect: bool,
    ) -> Result<(), QmpError> {
        let options = qmp::SetPasswordOptionsBase {
            password: password.to_owned(),
            connected: disconnect.then_some(qmp::SetPasswordAction::disconnect),
        };
        self.run(qmp::set_password(qmp::SetPasswordOptions::spice(options)))
            .await
            .map(drop)
    }

    /// Makes the Spice password expire: `now`, `never`, `+N` seconds or a Unix time.
    pub async fn expire_spice_password(&self, time: &str) -> Result<(), QmpError> {
        self.run(ExpireSpicePassword {
            protocol: "spice",
            time: time.to_owned(),
        })
        .await
        .map(drop)
    }

    /// How many Spice channels are connected.
    pub async fn spice_channels(&self) -> Result<u32, QmpError> {
        let info = self.run(qmp::query_spice {}).await?;
        Ok(u32::try_from(info.channels.map_or(0, |c| c.len())).unwrap_or(u32::MAX))
    }

    /// Adds a device.
    pub async fn device_add(
        &self,
        driver: &str,
        id: &str,
        bus: &str,
        props: Vec<(String, serde_json::Value)>,
    ) -> Result<(), QmpError> {
        self.run(qmp::device_add::new(
            driver,
            Some(id.to_owned()),
            Some(bus.to_owned()),
            props,
        ))
        .await
        .map(drop)
    }

    /// Removes a device.
    pub async fn device_del(&self, id: &str) -> Result<(), QmpError> {
        self.run(qmp::device_del { id: id.to_owned() })
            .await
            .map(drop)
    }
}

/// `expire_password` for Spice. The generated type cannot serialize its Spice variant (an
/// internally tagged enum around a plain string), so this one spells the wire form out.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExpireSpicePassword {
    protocol: &'static str,
    time: String,
}

impl qmp::QmpCommand for ExpireSpicePassword {}

impl qapi::Command for ExpireSpicePassword {
    const NAME: &'static str = "expire_password";
    const ALLOW_OOB: bool = false;
    type Ok = qapi::Empty;
}
