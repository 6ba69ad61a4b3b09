//! The addresses of a run's namespaces, from 198.18.0.0/15, the block RFC
//! 2544 sets aside for benchmark networks.
//!
//! Worker host `h`'s link to the server is `198.18.h.0/24`: the server's end
//! is `.1`, the host's addresses `.2` onwards (its workers bind their sockets
//! to them in turn, as they bind to `127.x` sources on one machine: the
//! ephemeral ports are per source address, and a namespace's loopback is its
//! own). These links live wholly inside namespaces, so every run may use the
//! same ones. The coordinator reaches the server over a /30 of
//! `198.19.0.0/16` whose one end is in the root namespace: that one is chosen
//! per run, so that runs side by side do not share it.

use std::net::Ipv4Addr;

/// Addresses one worker host can have on its /24 (`.2` to `.254`).
pub const MAX_HOST_ADDRESSES: usize = 253;

/// /30 blocks in `198.19.0.0/16`.
pub const ROOT_BLOCKS: u32 = 16_384;

/// The server's end of worker host `h`'s link.
pub fn server_end(h: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, host_octet(h), 1)
}

/// Worker host `h`'s address `i` (0 is the first).
pub fn host_address(h: usize, i: usize) -> Ipv4Addr {
    assert!(
        i < MAX_HOST_ADDRESSES,
        "a host has {MAX_HOST_ADDRESSES} addresses"
    );
    Ipv4Addr::new(198, 18, host_octet(h), 2 + i as u8)
}

fn host_octet(h: usize) -> u8 {
    u8::try_from(h).expect("at most 256 worker hosts")
}

/// The root namespace's end and the server's end of /30 block `k`.
pub fn root_link(k: u32) -> (Ipv4Addr, Ipv4Addr) {
    let k = k % ROOT_BLOCKS;
    let (third, fourth) = ((k / 64) as u8, (k % 64 * 4) as u8);
    (
        Ipv4Addr::new(198, 19, third, fourth + 1),
        Ipv4Addr::new(198, 19, third, fourth + 2),
    )
}

/// The first /30 block from `start` on whose ends none of `used` (the root
/// namespace's addresses) holds.
pub fn free_root_block(start: u32, used: &[Ipv4Addr]) -> Option<u32> {
    (0..ROOT_BLOCKS)
        .map(|i| (start + i) % ROOT_BLOCKS)
        .find(|&k| {
            let (a, b) = root_link(k);
            !used.contains(&a) && !used.contains(&b)
        })
}

/// The bucket of a `tbf` at `rate_mbit`: 10 ms at that rate, and at least
/// 64 KiB (a bucket smaller than one timer tick's worth caps the rate below
/// the one asked for).
pub fn tbf_burst_bytes(rate_mbit: f64) -> u64 {
    let per_10ms = rate_mbit * 1e6 / 8.0 / 100.0;
    (per_10ms as u64).max(64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_benchmark_block(a: Ipv4Addr) -> bool {
        let [x, y, ..] = a.octets();
        x == 198 && (y == 18 || y == 19)
    }

    #[test]
    fn every_address_is_in_the_benchmark_block_and_used_once() {
        let mut all = Vec::new();
        for h in 0..64 {
            all.push(server_end(h));
            for i in [0, 1, MAX_HOST_ADDRESSES - 1] {
                all.push(host_address(h, i));
            }
        }
        for k in [0, 1, 63, 64, ROOT_BLOCKS - 1] {
            let (a, b) = root_link(k);
            all.extend([a, b]);
        }
        assert!(all.iter().all(|&a| in_benchmark_block(a)), "{all:?}");
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "an address given twice");
        assert_eq!(host_address(3, 252), Ipv4Addr::new(198, 18, 3, 254));
        assert_eq!(
            root_link(65),
            (Ipv4Addr::new(198, 19, 1, 5), Ipv4Addr::new(198, 19, 1, 6))
        );
    }

    #[test]
    fn a_block_in_use_is_passed_over() {
        assert_eq!(free_root_block(5, &[]), Some(5));
        let (a, _) = root_link(5);
        let (_, b) = root_link(6);
        assert_eq!(free_root_block(5, &[a, b]), Some(7));
        // The search wraps round.
        let last = ROOT_BLOCKS - 1;
        assert_eq!(free_root_block(last, &[root_link(last).0]), Some(0));
        let every: Vec<Ipv4Addr> = (0..ROOT_BLOCKS).map(|k| root_link(k).1).collect();
        assert_eq!(free_root_block(9, &every), None);
    }

    #[test]
    fn buckets() {
        assert_eq!(tbf_burst_bytes(1.0), 64 * 1024);
        assert_eq!(tbf_burst_bytes(1000.0), 1_250_000);
    }
}
