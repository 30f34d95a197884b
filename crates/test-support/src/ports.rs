//! Loopback ports for servers a test starts itself (a gateway, `sshd`,
//! an S3 or Azure emulator) that take a port number rather than binding
//! port 0, or that a test stops and starts again on the same address.
//!
//! The kernel hands out ports to `bind(port 0)` and to outgoing
//! connections from its ephemeral range only. A port below that range,
//! checked free, cannot be taken by another test's socket between the
//! check and the server's own bind, or while a server is down for a
//! restart. Only another test's pick of the same random port could
//! collide, which the servers' starters catch and retry.

use std::net::TcpListener;

/// The lowest port handed out (ports below are system services).
const FLOOR: u16 = 10_000;

/// A free loopback port below the kernel's ephemeral range, picked at
/// random; one the kernel picks (bound to port 0, then let go) when that
/// band is too small or full.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` different free ports, as [`free_port`] picks them.
pub fn free_ports(n: usize) -> Vec<u16> {
    // Held together, so no two are the same.
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    let band = ephemeral_low().filter(|&low| low >= FLOOR + 1_000);
    for _ in 0..n {
        let picked = band.and_then(|low| {
            (0..100).find_map(|_| {
                let mut bytes = [0u8; 2];
                aws_lc_rs::rand::fill(&mut bytes).unwrap();
                let port = FLOOR + u16::from_le_bytes(bytes) % (low - FLOOR);
                TcpListener::bind(("127.0.0.1", port)).ok()
            })
        });
        held.push(picked.unwrap_or_else(|| TcpListener::bind("127.0.0.1:0").unwrap()));
    }
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The low end of the kernel's ephemeral port range.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_different_and_free() {
        let low = ephemeral_low().unwrap();
        let ports = free_ports(20);
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 20, "{ports:?}");
        for &port in &ports {
            if low >= FLOOR + 1_000 {
                assert!((FLOOR..low).contains(&port), "{port} (low {low})");
            }
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
