//! The host's USB devices, read from sysfs (`/sys/bus/usb/devices`), and the user's way of naming
//! one of them (`046d:c31c` or `1.4`) when attaching it to a VM.
//!
//! sysfs is written by the kernel, but its strings come from the devices themselves: a USB stick
//! chooses its own product name and serial number, and a malicious one can put terminal escapes,
//! right-to-left overrides or kilobytes of text there. Those strings end up in D-Bus replies, the
//! GUI and `palisadectl` output, so every value is parsed strictly and every name is cleaned and
//! capped here, at the edge. An entry that does not parse is skipped with a warning, never a panic:
//! one odd device must not hide the others.
//!
//! The listing takes the directory as an argument so tests can point it at a fixture tree
//! (`usb/fixture/`); the helper passes [`SYSFS_USB_DEVICES`].

use serde::Serialize;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where the kernel lists USB devices (one symlink per device and per interface).
pub const SYSFS_USB_DEVICES: &str = "/sys/bus/usb/devices";

/// The longest name (manufacturer, product, serial) kept, in characters. USB string descriptors
/// hold at most 126 UTF-16 units, so nothing legitimate is cut.
const MAX_NAME_CHARS: usize = 128;

/// The most bytes read from one sysfs attribute. Real attributes are a line; a page is what the
/// kernel can return for one, so anything larger is not sysfs and is not read whole.
const MAX_ATTR_BYTES: u64 = 4096;

/// `bDeviceClass` of a hub.
const CLASS_HUB: u8 = 0x09;

/// One USB device of the host, as the helper reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUsbDevice {
    /// Bus number (`busnum`), 1 or more.
    pub bus: u8,
    /// Device address on that bus (`devnum`), 1–127. It changes when the device is plugged in
    /// again.
    pub address: u8,
    /// `idVendor`.
    pub vendor_id: u16,
    /// `idProduct`.
    pub product_id: u16,
    /// Manufacturer string, cleaned; empty when the device has none.
    pub manufacturer: String,
    /// Product string, cleaned; empty when the device has none.
    pub product: String,
    /// Serial number, cleaned; empty when the device has none.
    pub serial: String,
    /// The physical port chain below the root hub, dot-separated: `"2.3"` for the sysfs entry
    /// `1-2.3`. This is the form QEMU's `usb-host` `hostport` property takes, and unlike the
    /// address it stays the same when the device is plugged in again. Empty for a root hub.
    pub port_path: String,
    /// A hub (root hub or external): never attached to a VM, since that would take every device
    /// behind it away from the host.
    pub is_hub: bool,
}

/// Lists the USB devices under `sysfs_usb_devices` (normally [`SYSFS_USB_DEVICES`]), sorted by
/// (bus, address). Interfaces (`1-2:1.0`) are not devices and are left out; root hubs (`usb1`) are
/// listed with `is_hub` set. A directory that does not exist (a machine or container without USB)
/// gives an empty list.
pub fn list_host_devices(sysfs_usb_devices: &Path) -> Vec<HostUsbDevice> {
    let entries = match fs::read_dir(sysfs_usb_devices) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::debug!("{} does not exist: no USB", sysfs_usb_devices.display());
            return Vec::new();
        }
        Err(e) => {
            tracing::warn!("cannot list {}: {e}", sysfs_usb_devices.display());
            return Vec::new();
        }
    };
    let mut devices = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!("cannot list {}: {e}", sysfs_usb_devices.display());
                continue;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!("skipping USB entry with a non-UTF-8 name {name:?}");
            continue;
        };
        let Some(kind) = EntryKind::of(name) else {
            // Interfaces and anything else that is not a device; interfaces are expected, so
            // this is not worth a warning.
            tracing::trace!("not a USB device entry: {name}");
            continue;
        };
        // `entry.path()`, not `entry.file_type()`: in real sysfs every entry is a symlink into
        // /sys/devices, and only a path lookup follows it.
        match read_device(&entry.path(), &kind) {
            Ok(device) => devices.push(device),
            Err(reason) => tracing::warn!("skipping USB device {name}: {reason}"),
        }
    }
    devices.sort_by(|a, b| (a.bus, a.address, &a.port_path).cmp(&(b.bus, b.address, &b.port_path)));
    drop_duplicate_addresses(devices)
}

/// `/dev/bus/usb/BBB/DDD`, the device node QEMU opens for the device.
pub fn device_node(d: &HostUsbDevice) -> PathBuf {
    PathBuf::from(format!("/dev/bus/usb/{:03}/{:03}", d.bus, d.address))
}

/// What a caller asks to attach: an emulated device (kiosks, tests) or a host device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachRequest {
    /// `emulated:usb-tablet`, `emulated:usb-kbd` or `emulated:usb-mouse`: QEMU's own device,
    /// through the same QMP path as host devices.
    Emulated(&'static str),
    /// A host device, as `VVVV:PPPP` or `BUS.ADDR`.
    Host(DeviceSelector),
}

/// The emulated devices a caller may attach.
const EMULATED: [&str; 3] = ["usb-tablet", "usb-kbd", "usb-mouse"];

impl AttachRequest {
    /// Parses the caller's device argument; the error is a sentence for the user.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix("emulated:") {
            Some(model) => EMULATED
                .iter()
                .find(|m| **m == model)
                .map(|m| Self::Emulated(m))
                .ok_or_else(|| {
                    format!(
                        "\"{}\" is not an emulated device: use usb-tablet, usb-kbd or usb-mouse",
                        clean_name(model)
                    )
                }),
            None => parse_device_selector(s).map(Self::Host),
        }
    }
}

/// Gives the device node to the VM's user: QEMU opens it itself, as that user, for the time the
/// device is attached (libvirt does the same).
pub fn hand_over(node: &Path, uid: u32) -> Result<(), String> {
    nix::unistd::chown(node, Some(nix::unistd::Uid::from_raw(uid)), None)
        .map_err(|e| format!("cannot hand {} to the VM: {e}", node.display()))
}

/// Gives the device node back to root once the device is detached (or failed to attach).
pub fn take_back(node: &Path) {
    if let Err(e) = nix::unistd::chown(node, Some(nix::unistd::Uid::from_raw(0)), None) {
        tracing::warn!("cannot give {} back to root: {e}", node.display());
    }
}

/// How the user names a host USB device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSelector {
    /// `VVVV:PPPP`, as `lsusb` prints it: stable across re-plugging, ambiguous with two alike.
    VendorProduct { vendor: u16, product: u16 },
    /// `BUS.ADDR` or `BUS-ADDR`: bus number and device address as `lsusb` prints them ("Bus 001
    /// Device 004" is `1.4`). Note `1-4` here is *not* the sysfs port name `1-4`.
    BusAddress { bus: u8, address: u8 },
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VendorProduct { vendor, product } => write!(f, "{vendor:04x}:{product:04x}"),
            Self::BusAddress { bus, address } => write!(f, "{bus}.{address}"),
        }
    }
}

/// Parses the user's device argument: `VVVV:PPPP` (four hex digits each) or `BUS.ADDR` /
/// `BUS-ADDR` (decimal, leading zeros allowed so `001.004` from `lsusb` works). The error is a
/// sentence to show the user.
pub fn parse_device_selector(s: &str) -> Result<DeviceSelector, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "\"{}\" is not a USB device: give vendor:product (like 046d:c31c) or \
             bus.address (like 1.4)",
            clean_name(s)
        )
    };
    if let Some((vendor, product)) = s.split_once(':') {
        return match (parse_hex4(vendor), parse_hex4(product)) {
            (Some(vendor), Some(product)) => Ok(DeviceSelector::VendorProduct { vendor, product }),
            _ => Err(bad()),
        };
    }
    let Some((bus, address)) = s.split_once(['.', '-']) else {
        return Err(bad());
    };
    match (parse_bus(bus), parse_address(address)) {
        (Some(bus), Some(address)) => Ok(DeviceSelector::BusAddress { bus, address }),
        _ => Err(bad()),
    }
}

/// The one device `sel` names. Errors (sentences for the user): nothing matches; a vendor:product
/// shared by several devices (the sentence lists their bus.address to choose from); a hub.
pub fn select<'a>(
    devices: &'a [HostUsbDevice],
    sel: &DeviceSelector,
) -> Result<&'a HostUsbDevice, String> {
    let matches: Vec<&HostUsbDevice> = devices
        .iter()
        .filter(|d| match *sel {
            DeviceSelector::VendorProduct { vendor, product } => {
                d.vendor_id == vendor && d.product_id == product
            }
            DeviceSelector::BusAddress { bus, address } => d.bus == bus && d.address == address,
        })
        .collect();
    let device = match matches.as_slice() {
        [] => {
            return Err(match sel {
                DeviceSelector::VendorProduct { .. } => {
                    format!("no USB device {sel} is connected to this host")
                }
                DeviceSelector::BusAddress { bus, address } => format!(
                    "no USB device has bus {bus}, address {address} on this host (the address \
                     changes when a device is plugged in again)"
                ),
            })
        }
        [one] => *one,
        several => {
            let choices: Vec<String> = several
                .iter()
                .map(|d| format!("{}.{}", d.bus, d.address))
                .collect();
            return Err(format!(
                "{} USB devices are {sel} ({}); name one by its bus.address instead",
                several.len(),
                choices.join(", ")
            ));
        }
    };
    if device.is_hub {
        return Err(format!(
            "USB device {}.{} ({}) is a hub; a hub cannot be attached to a virtual machine \
             (attach the device plugged into it instead)",
            device.bus,
            device.address,
            describe(device)
        ));
    }
    Ok(device)
}

/// A short human name: "Logitech USB Keyboard", falling back to vendor:product.
fn describe(d: &HostUsbDevice) -> String {
    let name = [d.manufacturer.as_str(), d.product.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        format!("{:04x}:{:04x}", d.vendor_id, d.product_id)
    } else {
        name
    }
}

/// What a directory entry's name says it is.
#[derive(Debug, PartialEq, Eq)]
enum EntryKind {
    /// `usbN`: the root hub of bus N.
    RootHub { bus: u8 },
    /// `N-P[.P...]`: a device on bus N at port chain P.P.
    Device { bus: u8, port_path: String },
}

impl EntryKind {
    /// Classifies an entry name; `None` for interfaces (`1-2:1.0`) and anything unexpected.
    fn of(name: &str) -> Option<Self> {
        if name.contains(':') {
            return None;
        }
        if let Some(bus) = name.strip_prefix("usb") {
            return parse_bus(bus).map(|bus| Self::RootHub { bus });
        }
        let (bus, ports) = name.split_once('-')?;
        let bus = parse_bus(bus)?;
        // Hubs chain at most 7 tiers deep (USB 2.0, 4.1.1); ports are numbered from 1.
        let mut count = 0;
        for port in ports.split('.') {
            count += 1;
            if count > 7 || parse_decimal(port, 3).filter(|&p| p >= 1).is_none() {
                return None;
            }
        }
        Some(Self::Device {
            bus,
            port_path: ports.to_owned(),
        })
    }
}

/// Reads one device directory. The error is the reason to log.
fn read_device(dir: &Path, kind: &EntryKind) -> Result<HostUsbDevice, String> {
    // sysfs ends every value with a newline; that one newline is all that is stripped, so the
    // parsers below see exactly what the kernel wrote.
    let required = |attr: &str| -> Result<String, String> {
        let raw = read_attr(dir, attr)?.ok_or_else(|| format!("{attr} is missing"))?;
        Ok(raw.strip_suffix('\n').map(str::to_owned).unwrap_or(raw))
    };
    let invalid = |attr: &str, raw: &str| format!("{attr} is not valid: {:?}", clean_name(raw));

    let raw = required("idVendor")?;
    let vendor_id = parse_hex4(&raw).ok_or_else(|| invalid("idVendor", &raw))?;
    let raw = required("idProduct")?;
    let product_id = parse_hex4(&raw).ok_or_else(|| invalid("idProduct", &raw))?;
    let raw = required("busnum")?;
    let bus = parse_bus(&raw).ok_or_else(|| invalid("busnum", &raw))?;
    let raw = required("devnum")?;
    let address = parse_address(&raw).ok_or_else(|| invalid("devnum", &raw))?;
    let raw = required("bDeviceClass")?;
    let class = parse_hex2(&raw).ok_or_else(|| invalid("bDeviceClass", &raw))?;

    let (name_bus, port_path, root_hub) = match kind {
        EntryKind::RootHub { bus } => (*bus, String::new(), true),
        EntryKind::Device { bus, port_path } => (*bus, port_path.clone(), false),
    };
    // The entry name and busnum are two views of the same thing; if they disagree the tree is
    // not what we think it is, and device_node() would open some other device.
    if name_bus != bus {
        return Err(format!("its name says bus {name_bus} but busnum is {bus}"));
    }

    // Many devices have no manufacturer, product or serial string; that is not malformed.
    let name = |attr: &str| -> Result<String, String> {
        Ok(read_attr(dir, attr)?
            .map(|s| clean_name(&s))
            .unwrap_or_default())
    };
    Ok(HostUsbDevice {
        bus,
        address,
        vendor_id,
        product_id,
        manufacturer: name("manufacturer")?,
        product: name("product")?,
        serial: name("serial")?,
        port_path,
        is_hub: root_hub || class == CLASS_HUB,
    })
}

/// One sysfs attribute, at most [`MAX_ATTR_BYTES`], invalid UTF-8 replaced; `None` if absent.
fn read_attr(dir: &Path, attr: &str) -> Result<Option<String>, String> {
    let path = dir.join(attr);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_ATTR_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Exactly four hex digits (`046d`), as sysfs writes ids and users copy them from `lsusb`.
fn parse_hex4(s: &str) -> Option<u16> {
    (s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u16::from_str_radix(s, 16).ok())
        .flatten()
}

/// Exactly two hex digits (`09`), as sysfs writes class codes.
fn parse_hex2(s: &str) -> Option<u8> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u8::from_str_radix(s, 16).ok())
        .flatten()
}

/// Decimal digits only (no sign, no spaces, which `str::parse` would partly accept), at most
/// `max_digits` of them, fitting a u8.
fn parse_decimal(s: &str, max_digits: usize) -> Option<u8> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A bus number: 1–255 (Linux numbers buses from 1).
fn parse_bus(s: &str) -> Option<u8> {
    parse_decimal(s, 3).filter(|&n| n >= 1)
}

/// A device address: 1–127 (USB 2.0, 9.4.6; 0 is the default address of an unconfigured
/// device and never appears in devnum).
fn parse_address(s: &str) -> Option<u8> {
    parse_decimal(s, 3).filter(|&n| (1..=127).contains(&n))
}

/// A device-supplied name made safe to show: control characters (terminal escapes, newlines) and
/// the invisible Unicode formatting characters that reorder or hide text (bidi overrides and
/// isolates, zero-width characters) removed, surrounding whitespace trimmed, at most
/// [`MAX_NAME_CHARS`] characters.
fn clean_name(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible_format(c))
        .collect();
    let capped: String = kept.trim().chars().take(MAX_NAME_CHARS).collect();
    // Cutting may leave a space at the end.
    capped.trim_end().to_owned()
}

/// Unicode format characters that change how surrounding text is displayed without being seen
/// themselves ("Trojan Source" tricks).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Removes every device whose (bus, address) another one also claims. The kernel never does
/// this, so such a tree is corrupt and neither can be trusted to be behind its device node.
/// `devices` must be sorted by (bus, address).
fn drop_duplicate_addresses(devices: Vec<HostUsbDevice>) -> Vec<HostUsbDevice> {
    let mut kept: Vec<HostUsbDevice> = Vec::with_capacity(devices.len());
    let mut duplicate_of_last = false;
    for device in devices {
        match kept.last() {
            Some(last) if (last.bus, last.address) == (device.bus, device.address) => {
                tracing::warn!(
                    "skipping USB devices {} and {}: both claim bus {}, address {}",
                    entry_name(last),
                    entry_name(&device),
                    device.bus,
                    device.address
                );
                duplicate_of_last = true;
            }
            _ => {
                if duplicate_of_last {
                    kept.pop();
                    duplicate_of_last = false;
                }
                kept.push(device);
            }
        }
    }
    if duplicate_of_last {
        kept.pop();
    }
    kept
}

/// The sysfs entry name a device was read from, for log lines.
fn entry_name(d: &HostUsbDevice) -> String {
    if d.port_path.is_empty() {
        format!("usb{}", d.bus)
    } else {
        format!("{}-{}", d.bus, d.port_path)
    }
}

#[cfg(test)]
mod tests;
