//! The DNS lab the DNS-names tests and the bench share: a test environment whose namespace has a
//! real DNS server on 10.53.0.53 and 10.53.0.99 (`tests/tools/dns_server.py`), an
//! `/etc/resolv.conf` naming 10.53.0.53 (for the helper and everything started after it), and
//! 10.64.0.0/10 routed locally with an echo listener on port 80, so every address the server
//! hands out can be connected to — if the firewall lets the connection out.

use crate::TestEnv;
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::process::Child;

/// The port every answered address listens on.
pub const ECHO_PORT: u16 = 80;

/// The lab; its server and listener are killed when it is dropped.
pub struct DnsLab {
    /// The environment, its helper running.
    pub env: TestEnv,
    children: Vec<Child>,
}

impl Drop for DnsLab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl DnsLab {
    /// Sets the namespace up, then starts the helper.
    pub fn start() -> Result<DnsLab> {
        let env = TestEnv::start_without_helper()?;
        let etc = env.netns_etc_dir();
        std::fs::create_dir_all(&etc)?;
        std::fs::write(etc.join("resolv.conf"), "nameserver 10.53.0.53\n")?;
        for argv in [
            &["ip", "addr", "add", "10.53.0.53/32", "dev", "lo"][..],
            &["ip", "addr", "add", "10.53.0.99/32", "dev", "lo"],
            &["ip", "route", "add", "local", "10.64.0.0/10", "dev", "lo"],
        ] {
            let out = env.run_as(None, argv);
            if !out.status.success() {
                bail!("{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let tools = crate::workspace_dir().join("tests/tools");
        let server = env.user_path(&tools.join("dns_server.py"));
        let netcheck = env.user_path(&tools.join("netcheck.py"));
        let mut lab = DnsLab {
            children: Vec::new(),
            env,
        };
        let port = ECHO_PORT.to_string();
        for argv in [
            vec![
                "python3",
                &*server.to_string_lossy(),
                "10.53.0.53",
                "10.53.0.99",
            ],
            vec![
                "python3",
                &*netcheck.to_string_lossy(),
                "listen-on",
                "0.0.0.0",
                &port,
            ],
        ] {
            let mut child = lab.env.spawn_as(None, &argv)?;
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                std::io::BufReader::new(out).read_line(&mut line)?;
            }
            lab.children.push(child);
            if line.trim() != "ready" {
                bail!("{} did not start", argv[1]);
            }
        }
        lab.env.start_helper().context("starting the helper")?;
        Ok(lab)
    }
}

/// The lab's network beyond the host: a second namespace joined to the lab's by a veth pair
/// (10.99.0.1 on the lab's side, `link`; 10.99.0.2 beyond), holding the DNS server behind a
/// `stunnel` TLS front on port 853 whose certificate names `dns.test` and comes from a CA made
/// for the test (`ca`). What crosses `link` is what a hostile local network would see.
pub struct TlsUpstream {
    ns: crate::netns::Netns,
    /// The lab's end of the veth pair.
    pub link: String,
    /// The test CA's certificate (PEM), readable by the helper.
    pub ca: std::path::PathBuf,
    children: Vec<Child>,
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Dropping `ns` deletes the namespace and the veth pair with it.
    }
}

fn run(cmd: &mut std::process::Command) -> Result<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl TlsUpstream {
    /// Builds the network, the certificates, the server and its TLS front.
    pub fn start(lab: &DnsLab) -> Result<TlsUpstream> {
        let lab_ns = lab.env.netns().to_owned();
        let id = lab_ns.trim_start_matches(crate::netns::NETNS_PREFIX);
        let ns = crate::netns::Netns::create(&format!("{id}-up"))?;
        let short: String = id.chars().take(8).collect();
        let (link, far) = (format!("pa{short}"), format!("pb{short}"));
        run(std::process::Command::new("ip").args([
            "link",
            "add",
            &link,
            "netns",
            &lab_ns,
            "type",
            "veth",
            "peer",
            "name",
            &far,
            "netns",
            ns.name(),
        ]))?;
        run(std::process::Command::new("ip").args([
            "-n",
            &lab_ns,
            "addr",
            "add",
            "10.99.0.1/24",
            "dev",
            &link,
        ]))?;
        run(std::process::Command::new("ip").args(["-n", &lab_ns, "link", "set", &link, "up"]))?;
        run(std::process::Command::new("ip").args([
            "-n",
            ns.name(),
            "addr",
            "add",
            "10.99.0.2/24",
            "dev",
            &far,
        ]))?;
        run(std::process::Command::new("ip").args(["-n", ns.name(), "link", "set", &far, "up"]))?;

        let dir = lab.env.dir().join("tls-upstream");
        std::fs::create_dir_all(&dir)?;
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let openssl = |args: &[&str]| run(std::process::Command::new("openssl").args(args));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=Palisade test CA",
        ])?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &path("server.key"),
            "-out",
            &path("server.csr"),
            "-subj",
            "/CN=dns.test",
        ])?;
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:dns.test\n")?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-out",
            &path("server.pem"),
            "-days",
            "2",
            "-extfile",
            &path("san.ext"),
        ])?;
        std::fs::write(
            dir.join("stunnel.conf"),
            format!(
                "foreground = yes\npid =\n[dns]\naccept = 10.99.0.2:853\nconnect = 10.99.0.2:53\n\
                 cert = {}\nkey = {}\n",
                path("server.pem"),
                path("server.key")
            ),
        )?;
        let mut upstream = TlsUpstream {
            ns,
            link,
            ca: dir.join("ca.pem"),
            children: Vec::new(),
        };
        let server = crate::workspace_dir().join("tests/tools/dns_server.py");
        let mut dns = upstream
            .ns
            .command(&["/usr/bin/python3", &*server.to_string_lossy(), "10.99.0.2"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = dns.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        upstream.children.push(dns);
        if line.trim() != "ready" {
            bail!("the upstream DNS server did not start");
        }
        let stunnel = upstream
            .ns
            .command(&["stunnel4", &*path("stunnel.conf")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        upstream.children.push(stunnel);
        let started = std::time::Instant::now();
        loop {
            let probe = upstream
                .ns
                .command(&["bash", "-c", "exec 3<>/dev/tcp/10.99.0.2/853"])
                .output()?;
            if probe.status.success() {
                break;
            }
            if started.elapsed() > std::time::Duration::from_secs(15) {
                bail!("stunnel did not listen on 10.99.0.2:853");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(upstream)
    }
}
