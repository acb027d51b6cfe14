//! The DNS forwarder: every guest's DNS is redirected here (one listening port per VM, so the
//! port says for certain which VM asked), passed to the upstream, and — before the answer goes
//! back — the answered addresses of names the VM's rules mention are put in that VM's sets with
//! a timeout tied to the TTL, acknowledged by the kernel. The guest never knows an address the
//! firewall does not.

pub mod upstream;
