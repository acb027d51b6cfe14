//! Palisade's own small certificate authority for Spice over TLS.
//!
//! The CA key never leaves `<state>/tls/ca` (root only). Each VM that asks for TLS gets a server
//! certificate for its Spice address (and loopback) in `<state>/tls/<vm>`, readable by root and
//! the VM's group only; QEMU reaches that folder through a descriptor the helper hands it, never
//! by path. Console tickets carry the CA certificate so viewers can check whom they talk to.
//! Keys and certificates are made by the `openssl` tool from validated names and addresses only.

use palisade_dbus::policy::VmName;
use palisade_dbus::Error;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The folder of the CA and the per-VM certificates.
pub fn tls_root(state: &Path) -> PathBuf {
    state.join("tls")
}

/// The CA certificate (PEM), creating the CA on first use.
pub async fn ca_certificate(root: &Path) -> Result<String, Error> {
    let ca = root.join("ca");
    let cert = ca.join("ca-cert.pem");
    if !cert.exists() {
        fs::create_dir_all(&ca).map_err(io("create the CA folder"))?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .map_err(io("protect the TLS folder"))?;
        fs::set_permissions(&ca, fs::Permissions::from_mode(0o700))
            .map_err(io("protect the CA folder"))?;
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:3072",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=Palisade console CA",
            "-keyout",
            &path(&ca.join("ca-key.pem")),
            "-out",
            &path(&cert),
        ])
        .await?;
    }
    fs::read_to_string(&cert).map_err(io("read the CA certificate"))
}

/// The folder with `ca-cert.pem`, `server-cert.pem` and `server-key.pem` for `vm` (QEMU's
/// `x509-dir` layout), issued for `address` and loopback; made if missing or for another address.
pub async fn server_folder(
    root: &Path,
    vm: &VmName,
    address: IpAddr,
    vm_gid: u32,
) -> Result<PathBuf, Error> {
    let ca_pem = ca_certificate(root).await?;
    let dir = root.join(vm.as_str());
    let stamp = dir.join("address");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(&address.to_string()) {
        return Ok(dir);
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(io("create the VM's TLS folder"))?;
    let key = dir.join("server-key.pem");
    let csr = dir.join("server.csr");
    let ext = dir.join("san.ext");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:3072",
        "-nodes",
        "-subj",
        &format!("/CN={}", vm.system_user()),
        "-keyout",
        &path(&key),
        "-out",
        &path(&csr),
    ])
    .await?;
    let mut san = format!("subjectAltName=IP:{address}");
    if !address.is_loopback() {
        san.push_str(",IP:127.0.0.1");
    }
    fs::write(&ext, format!("{san}\nextendedKeyUsage=serverAuth\n"))
        .map_err(io("write the certificate extensions"))?;
    let ca = root.join("ca");
    openssl(&[
        "x509",
        "-req",
        "-days",
        "825",
        "-in",
        &path(&csr),
        "-CA",
        &path(&ca.join("ca-cert.pem")),
        "-CAkey",
        &path(&ca.join("ca-key.pem")),
        "-CAcreateserial",
        "-extfile",
        &path(&ext),
        "-out",
        &path(&dir.join("server-cert.pem")),
    ])
    .await?;
    fs::write(dir.join("ca-cert.pem"), ca_pem).map_err(io("copy the CA certificate"))?;
    let _ = fs::remove_file(&csr);
    let _ = fs::remove_file(&ext);
    fs::write(&stamp, address.to_string()).map_err(io("record the certificate's address"))?;
    // QEMU (the VM's user) reads the key; nobody else may.
    let group = Some(nix::unistd::Gid::from_raw(vm_gid));
    for (file, mode) in [
        ("server-key.pem", 0o640),
        ("server-cert.pem", 0o644),
        ("ca-cert.pem", 0o644),
    ] {
        nix::unistd::chown(&dir.join(file), None, group)
            .map_err(io("hand the key to the VM's group"))?;
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(mode))
            .map_err(io("set the key's mode"))?;
    }
    nix::unistd::chown(&dir, None, group).map_err(io("hand the folder to the VM's group"))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750))
        .map_err(io("protect the VM's TLS folder"))?;
    Ok(dir)
}

async fn openssl(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .await
        .map_err(io("run openssl"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "openssl {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn io<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| super::io(what, e)
}
