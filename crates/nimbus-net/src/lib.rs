//! How traffic reaches instances from the host. For now: elastic IPs, which
//! answer on a host address (a loopback 127.x address by default, so nothing
//! ever leads off this machine) and forward each TCP connection to the
//! instance the address is associated with. See [`forward`].

pub mod firewall;
pub mod forward;
