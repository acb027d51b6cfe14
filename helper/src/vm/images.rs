//! A VM's disk image versions: `<images>/<vm>/v<N>-<disk>`, and `versions.json` saying which
//! is the base and which is an update in progress.
//!
//! Invariants: the folder is root's alone (0700); the base and every kept version are 0444 and
//! owned by root, so nothing but a promote or restore (by the helper) changes which bytes a VM
//! boots from; an update is a full copy, never an image backed by another, so deleting an old
//! version can never break a newer one; the base is never deleted.

use super::io;
use crate::clock::unix_now;
use palisade_dbus::policy::{DiskName, VmName};
use palisade_dbus::types::{ImageRole, ImageVersion};
use palisade_dbus::Error;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::process::Command;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    versions: Vec<Version>,
    base: u32,
    update: Option<u32>,
    /// Whether the update's VM has stopped, so it may be promoted or discarded.
    update_finished: bool,
    spice_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Version {
    version: u32,
    created_at: u64,
}

/// One VM's image folder.
#[derive(Debug, Clone)]
pub struct Images {
    dir: PathBuf,
    disk: DiskName,
}

impl Images {
    /// The image folder of `vm` under `root`.
    pub fn of(root: &Path, vm: &VmName, disk: &DiskName) -> Self {
        Self {
            dir: root.join(vm.as_str()),
            disk: disk.clone(),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the folder and an empty first version of `bytes`.
    pub async fn create(&self, bytes: u64) -> Result<(), Error> {
        if self.dir.exists() {
            return Err(Error::InvalidArgument(format!(
                "{} already exists: remove it or choose another name",
                self.dir.display()
            )));
        }
        if let Some(parent) = self.dir.parent() {
            fs::create_dir_all(parent).map_err(|e| io("create the images folder", e))?;
        }
        fs::create_dir(&self.dir).map_err(|e| io("create the VM's image folder", e))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("protect the image folder", e))?;
        let path = self.version_path(1);
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&path)
            .arg(bytes.to_string())
            .output()
            .await
            .map_err(|e| io("run qemu-img", e))?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(Error::Internal(format!(
                "qemu-img could not create the disk: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444))
            .map_err(|e| io("make the image read-only", e))?;
        self.save(&Record {
            versions: vec![Version {
                version: 1,
                created_at: unix_now(),
            }],
            base: 1,
            ..Record::default()
        })
    }

    fn version_path(&self, v: u32) -> PathBuf {
        self.dir.join(format!("v{v}-{}", self.disk))
    }

    fn load(&self) -> Result<Record, Error> {
        let bytes = fs::read(self.dir.join("versions.json")).map_err(|_| {
            Error::NotFound(format!(
                "the VM has no disk images yet ({}): create it first",
                self.dir.display()
            ))
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("versions.json is damaged: {e}")))
    }

    fn save(&self, r: &Record) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| Error::Internal(e.to_string()))?;
        crate::store::write_atomic(&self.dir.join("versions.json"), &bytes, 0o600)
            .map_err(|e| io("save versions.json", e))
    }

    /// The base image, after checking nobody but root can change it.
    pub fn base(&self) -> Result<PathBuf, Error> {
        let r = self.load()?;
        let path = self.version_path(r.base);
        let meta = fs::symlink_metadata(&path).map_err(|e| io("find the base image", e))?;
        if !meta.file_type().is_file() || meta.uid() != 0 || meta.mode() & 0o222 != 0 {
            return Err(Error::InvalidArgument(format!(
                "refusing to start: the base image {} must be a plain file owned by root and \
                 writable by nobody (it is mode {:o}, owner uid {})",
                path.display(),
                meta.mode() & 0o7777,
                meta.uid()
            )));
        }
        Ok(path)
    }

    /// Starts an update: copies the base to a new version, writable by root only (QEMU gets a
    /// descriptor). An unfinished update is resumed rather than copied again.
    pub async fn begin_update(&self) -> Result<PathBuf, Error> {
        let mut r = self.load()?;
        if let Some(u) = r.update {
            if r.update_finished {
                return Err(Error::Conflict(format!(
                    "version {u} from an earlier update waits: promote or discard it first"
                )));
            }
            return Ok(self.version_path(u));
        }
        let base = self.base()?;
        let next = r.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let path = self.version_path(next);
        let out = Command::new("cp")
            .args(["--reflink=auto", "--no-preserve=mode,ownership"])
            .arg(&base)
            .arg(&path)
            .output()
            .await
            .map_err(|e| io("copy the base image", e))?;
        if !out.status.success() {
            let _ = fs::remove_file(&path);
            return Err(Error::Internal(format!(
                "copying the base image failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io("protect the update", e))?;
        r.versions.push(Version {
            version: next,
            created_at: unix_now(),
        });
        r.update = Some(next);
        r.update_finished = false;
        self.save(&r)?;
        Ok(path)
    }

    /// The update ended (its VM stopped); it may now be promoted or discarded.
    pub fn finish_update(&self) -> Result<(), Error> {
        let mut r = self.load()?;
        if r.update.is_some() {
            r.update_finished = true;
            self.save(&r)?;
        }
        Ok(())
    }

    /// Makes the finished update the base; keeps `keep` earlier versions. `in_use` is a version
    /// a running VM still reads, which is never deleted.
    pub fn promote(&self, keep: u8, in_use: Option<u32>) -> Result<u32, Error> {
        let mut r = self.load()?;
        let Some(u) = r.update.filter(|_| r.update_finished) else {
            return Err(Error::NotFound(
                "there is no finished update to promote".into(),
            ));
        };
        fs::set_permissions(self.version_path(u), fs::Permissions::from_mode(0o444))
            .map_err(|e| io("make the new base read-only", e))?;
        r.base = u;
        r.update = None;
        r.update_finished = false;
        let mut older: Vec<u32> = r
            .versions
            .iter()
            .map(|v| v.version)
            .filter(|v| *v != u)
            .collect();
        older.sort_unstable_by(|a, b| b.cmp(a));
        let doomed: Vec<u32> = older
            .into_iter()
            .skip(usize::from(keep))
            .filter(|v| Some(*v) != in_use)
            .collect();
        for v in &doomed {
            let _ = fs::remove_file(self.version_path(*v));
        }
        r.versions.retain(|v| !doomed.contains(&v.version));
        self.save(&r)?;
        Ok(u)
    }

    /// Throws away the update.
    pub fn discard(&self) -> Result<(), Error> {
        let mut r = self.load()?;
        let Some(u) = r.update.filter(|_| r.update_finished) else {
            return Err(Error::NotFound(
                "there is no finished update to discard".into(),
            ));
        };
        let _ = fs::remove_file(self.version_path(u));
        r.versions.retain(|v| v.version != u);
        r.update = None;
        r.update_finished = false;
        self.save(&r)
    }

    /// Makes an earlier kept version the base again.
    pub fn restore(&self, version: u32) -> Result<(), Error> {
        let mut r = self.load()?;
        if r.update == Some(version) || !r.versions.iter().any(|v| v.version == version) {
            return Err(Error::NotFound(format!(
                "there is no kept version {version}; `vm versions` lists them"
            )));
        }
        r.base = version;
        self.save(&r)
    }

    /// Every version with its role.
    pub fn versions(&self) -> Result<Vec<ImageVersion>, Error> {
        let r = self.load()?;
        Ok(r.versions
            .iter()
            .map(|v| ImageVersion {
                version: v.version,
                created_at: v.created_at,
                role: if v.version == r.base {
                    ImageRole::Base
                } else if Some(v.version) == r.update {
                    ImageRole::Update
                } else {
                    ImageRole::Kept
                },
                bytes: fs::metadata(self.version_path(v.version))
                    .map(|m| m.blocks() * 512)
                    .unwrap_or(0),
            })
            .collect())
    }

    /// (base version, pending finished update or 0).
    pub fn summary(&self) -> (u32, u32) {
        self.load()
            .map(|r| (r.base, r.update.filter(|_| r.update_finished).unwrap_or(0)))
            .unwrap_or((0, 0))
    }

    /// The Spice port recorded for this VM (0 if none yet).
    pub fn spice_port(&self) -> u16 {
        self.load().map(|r| r.spice_port).unwrap_or(0)
    }

    /// Records the VM's Spice port.
    pub fn set_spice_port(&self, port: u16) -> Result<(), Error> {
        let mut r = self.load()?;
        r.spice_port = port;
        self.save(&r)
    }
}

/// Parses a disk size: `20G`, `512M`, `1T` (binary units), or bytes; the contract's grammar,
/// which the app checks as it is typed.
pub fn parse_disk_size(s: &str) -> Result<u64, String> {
    palisade_dbus::policy::size::parse_disk_size(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_sizes() {
        assert_eq!(parse_disk_size("20G"), Ok(20 << 30));
        assert_eq!(parse_disk_size("512M"), Ok(512 << 20));
        for bad in ["-1G", "1E", "0", "G", "1.5G", "17T", "99999999999999999999"] {
            assert!(parse_disk_size(bad).is_err(), "{bad}");
        }
    }
}
