//! A private X server (Xvfb) for tests and benchmarks that run a real viewer or the app.

use anyhow::{Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Xvfb on a display nobody else uses; stopped when dropped. Access control is off
/// (`-ac`) so the test users' viewers may draw on it.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts one (1024×768) and waits until its socket exists.
    pub fn start() -> Result<Xvfb> {
        Xvfb::start_sized(1024, 768)
    }

    /// Starts one of `width`×`height` pixels and waits until its socket exists.
    pub fn start_sized(width: u32, height: u32) -> Result<Xvfb> {
        let screen = format!("{width}x{height}x24");
        let n = (150..250)
            .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
            .context("no free X display between :150 and :250")?;
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                &screen,
                "-ac",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb")?;
        let xvfb = Xvfb { child, display };
        let socket = format!("/tmp/.X11-unix/X{n}");
        if !crate::process::wait_until(Duration::from_secs(10), || {
            std::path::Path::new(&socket).exists()
        }) {
            anyhow::bail!("Xvfb did not come up on {}", xvfb.display);
        }
        Ok(xvfb)
    }

    /// The `DISPLAY` value.
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
