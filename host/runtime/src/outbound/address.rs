//! Which IP addresses an action may reach: the address filter as data.
//!
//! Why: the action is untrusted and the host dials on its behalf, from inside
//! the operator's network. Without this filter an action (or a DNS name it
//! controls) could make the host connect to the operator's internal services,
//! the machine's own loopback ports, or the cloud metadata endpoint
//! (`169.254.169.254`, which hands out instance credentials) — server-side
//! request forgery. So an address is reachable only when it is *public*: when
//! no row below contains it.
//!
//! The tables are the IANA IPv4 and IPv6 Special-Purpose Address Registries
//! (RFC 6890 and the RFCs that added to them), every entry that is not
//! globally reachable, plus the multicast blocks (their own registries) and a
//! few registry entries that IANA marks globally reachable but that are
//! infrastructure anycast no action has reason to call (AS112 DNS sinks, AMT
//! relays, the retired 6to4 relay anycast). A more specific entry comes
//! before the block that contains it, so the first match names it best.
//!
//! Addresses that carry an IPv4 address ([`IPV4_EMBEDDING`]: IPv4-mapped
//! `::ffff:a.b.c.d` and the NAT64 well-known prefix `64:ff9b::a.b.c.d`) are
//! judged by that IPv4 address: dialling them reaches it, so
//! `::ffff:127.0.0.1` is loopback while `64:ff9b::8.8.8.8` (what DNS64 returns
//! for an IPv4-only API on an IPv6-only cluster) is as public as `8.8.8.8`.
//! Embeddings whose layout the operator chooses (local-use NAT64
//! `64:ff9b:1::/48`) or that are retired (IPv4-compatible `::/96`, 6to4
//! `2002::/16`, Teredo `2001::/32`) are refused whole.
//!
//! ```
//! use actionbox_runtime::outbound::address::{is_public_address, special_purpose_range};
//! let metadata = "169.254.169.254".parse().unwrap();
//! assert_eq!(special_purpose_range(metadata).map(|r| r.rfc), Some("RFC 3927"));
//! assert!(is_public_address("2606:4700::1".parse().unwrap()));
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One row of a special-purpose registry: a block of addresses the host never
/// dials for an action, with where it is defined.
#[derive(Debug, PartialEq, Eq)]
pub struct SpecialRange {
    /// The block in CIDR notation, e.g. `10.0.0.0/8`.
    pub cidr: &'static str,
    /// What the block is, for messages and the operator.
    pub name: &'static str,
    /// The RFC that defines it, e.g. `RFC 1918`.
    pub rfc: &'static str,
    /// The block's first address (`cidr` before the `/`).
    network: IpAddr,
    /// The prefix length (`cidr` after the `/`).
    prefix_len: u8,
}

impl SpecialRange {
    /// Whether `ip` is inside this block (an IPv4 block never contains an
    /// IPv6 address, and the other way round).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix_len,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(u128::from(net), u128::from(ip), 128, self.prefix_len),
            _ => false,
        }
    }
}

/// Whether the first `prefix_len` of the `width` low bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, width: u32, prefix_len: u8) -> bool {
    let host_bits = width.saturating_sub(u32::from(prefix_len));
    (a ^ b).checked_shr(host_bits).unwrap_or(0) == 0
}

const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
}

/// IPv4 blocks that are not globally reachable (first match wins).
pub const IPV4_SPECIAL: &[SpecialRange] = &[
    SpecialRange {
        // Linux treats a connect to 0.0.0.0 as one to the local host.
        cidr: "0.0.0.0/8",
        name: "\"this network\"",
        rfc: "RFC 791",
        network: v4(0, 0, 0, 0),
        prefix_len: 8,
    },
    SpecialRange {
        cidr: "10.0.0.0/8",
        name: "private-use",
        rfc: "RFC 1918",
        network: v4(10, 0, 0, 0),
        prefix_len: 8,
    },
    SpecialRange {
        cidr: "100.64.0.0/10",
        name: "shared address space (carrier-grade NAT)",
        rfc: "RFC 6598",
        network: v4(100, 64, 0, 0),
        prefix_len: 10,
    },
    SpecialRange {
        cidr: "127.0.0.0/8",
        name: "loopback",
        rfc: "RFC 1122",
        network: v4(127, 0, 0, 0),
        prefix_len: 8,
    },
    SpecialRange {
        // Holds the cloud metadata endpoint 169.254.169.254.
        cidr: "169.254.0.0/16",
        name: "link-local (cloud metadata)",
        rfc: "RFC 3927",
        network: v4(169, 254, 0, 0),
        prefix_len: 16,
    },
    SpecialRange {
        cidr: "172.16.0.0/12",
        name: "private-use",
        rfc: "RFC 1918",
        network: v4(172, 16, 0, 0),
        prefix_len: 12,
    },
    SpecialRange {
        cidr: "192.0.0.0/29",
        name: "IPv4 service continuity prefix",
        rfc: "RFC 7335",
        network: v4(192, 0, 0, 0),
        prefix_len: 29,
    },
    SpecialRange {
        cidr: "192.0.0.8/32",
        name: "IPv4 dummy address",
        rfc: "RFC 7600",
        network: v4(192, 0, 0, 8),
        prefix_len: 32,
    },
    SpecialRange {
        cidr: "192.0.0.170/32",
        name: "NAT64/DNS64 discovery",
        rfc: "RFC 8880",
        network: v4(192, 0, 0, 170),
        prefix_len: 32,
    },
    SpecialRange {
        cidr: "192.0.0.171/32",
        name: "NAT64/DNS64 discovery",
        rfc: "RFC 8880",
        network: v4(192, 0, 0, 171),
        prefix_len: 32,
    },
    SpecialRange {
        // The whole block, including its two globally reachable anycast
        // entries (PCP 192.0.0.9, TURN 192.0.0.10): not an API's address.
        cidr: "192.0.0.0/24",
        name: "IETF protocol assignments",
        rfc: "RFC 6890",
        network: v4(192, 0, 0, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "192.0.2.0/24",
        name: "documentation (TEST-NET-1)",
        rfc: "RFC 5737",
        network: v4(192, 0, 2, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "192.31.196.0/24",
        name: "AS112-v4 (DNS sink)",
        rfc: "RFC 7535",
        network: v4(192, 31, 196, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "192.52.193.0/24",
        name: "automatic multicast tunneling (AMT)",
        rfc: "RFC 7450",
        network: v4(192, 52, 193, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "192.88.99.0/24",
        name: "6to4 relay anycast (deprecated)",
        rfc: "RFC 7526",
        network: v4(192, 88, 99, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "192.168.0.0/16",
        name: "private-use",
        rfc: "RFC 1918",
        network: v4(192, 168, 0, 0),
        prefix_len: 16,
    },
    SpecialRange {
        cidr: "192.175.48.0/24",
        name: "direct delegation AS112 service (DNS sink)",
        rfc: "RFC 7534",
        network: v4(192, 175, 48, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "198.18.0.0/15",
        name: "benchmarking",
        rfc: "RFC 2544",
        network: v4(198, 18, 0, 0),
        prefix_len: 15,
    },
    SpecialRange {
        cidr: "198.51.100.0/24",
        name: "documentation (TEST-NET-2)",
        rfc: "RFC 5737",
        network: v4(198, 51, 100, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "203.0.113.0/24",
        name: "documentation (TEST-NET-3)",
        rfc: "RFC 5737",
        network: v4(203, 0, 113, 0),
        prefix_len: 24,
    },
    SpecialRange {
        cidr: "224.0.0.0/4",
        name: "multicast",
        rfc: "RFC 5771",
        network: v4(224, 0, 0, 0),
        prefix_len: 4,
    },
    SpecialRange {
        cidr: "255.255.255.255/32",
        name: "limited broadcast",
        rfc: "RFC 919",
        network: v4(255, 255, 255, 255),
        prefix_len: 32,
    },
    SpecialRange {
        cidr: "240.0.0.0/4",
        name: "reserved for future use",
        rfc: "RFC 1112",
        network: v4(240, 0, 0, 0),
        prefix_len: 4,
    },
];

/// IPv6 blocks whose last 32 bits are an IPv4 address that dialling them
/// reaches; an address in one is judged by that IPv4 address
/// ([`IPV4_SPECIAL`]), never by this row.
pub const IPV4_EMBEDDING: &[SpecialRange] = &[
    SpecialRange {
        // A dual-stack socket sends ::ffff:a.b.c.d to a.b.c.d.
        cidr: "::ffff:0:0/96",
        name: "IPv4-mapped",
        rfc: "RFC 4291",
        network: v6(0, 0, 0, 0, 0, 0xffff, 0, 0),
        prefix_len: 96,
    },
    SpecialRange {
        // A NAT64 translator sends 64:ff9b::a.b.c.d to a.b.c.d; DNS64 answers
        // with these for IPv4-only names, so public ones must stay reachable.
        cidr: "64:ff9b::/96",
        name: "IPv4/IPv6 translation (NAT64 well-known prefix)",
        rfc: "RFC 6052",
        network: v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        prefix_len: 96,
    },
];

/// IPv6 blocks that are not globally reachable (first match wins), after the
/// IPv4-carrying blocks of [`IPV4_EMBEDDING`] have been resolved.
pub const IPV6_SPECIAL: &[SpecialRange] = &[
    SpecialRange {
        cidr: "::/128",
        name: "unspecified",
        rfc: "RFC 4291",
        network: v6(0, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 128,
    },
    SpecialRange {
        cidr: "::1/128",
        name: "loopback",
        rfc: "RFC 4291",
        network: v6(0, 0, 0, 0, 0, 0, 0, 1),
        prefix_len: 128,
    },
    SpecialRange {
        // Some stacks still translate ::a.b.c.d to a.b.c.d; retired, so refused whole.
        cidr: "::/96",
        name: "IPv4-compatible (deprecated)",
        rfc: "RFC 4291",
        network: v6(0, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 96,
    },
    SpecialRange {
        // The operator chooses where the IPv4 address sits, so a private one
        // cannot be told apart: refused whole.
        cidr: "64:ff9b:1::/48",
        name: "local-use IPv4/IPv6 translation (NAT64)",
        rfc: "RFC 8215",
        network: v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        prefix_len: 48,
    },
    SpecialRange {
        cidr: "100::/64",
        name: "discard-only",
        rfc: "RFC 6666",
        network: v6(0x100, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 64,
    },
    SpecialRange {
        cidr: "100:0:0:1::/64",
        name: "dummy IPv6 prefix",
        rfc: "RFC 9780",
        network: v6(0x100, 0, 0, 1, 0, 0, 0, 0),
        prefix_len: 64,
    },
    SpecialRange {
        // Teredo tunnels to an IPv4 address (obfuscated in the last 32 bits)
        // through a relay; refused whole rather than decoded.
        cidr: "2001::/32",
        name: "Teredo",
        rfc: "RFC 4380",
        network: v6(0x2001, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 32,
    },
    SpecialRange {
        cidr: "2001:2::/48",
        name: "benchmarking",
        rfc: "RFC 5180",
        network: v6(0x2001, 2, 0, 0, 0, 0, 0, 0),
        prefix_len: 48,
    },
    SpecialRange {
        // Also holds ORCHID, AMT, AS112-v6 and anycast service addresses:
        // protocol infrastructure, not APIs.
        cidr: "2001::/23",
        name: "IETF protocol assignments",
        rfc: "RFC 2928",
        network: v6(0x2001, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 23,
    },
    SpecialRange {
        cidr: "2001:db8::/32",
        name: "documentation",
        rfc: "RFC 3849",
        network: v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        prefix_len: 32,
    },
    SpecialRange {
        // 2002:aabb:ccdd::/48 tunnels to IPv4 aa.bb.cc.dd (which may be
        // private); retired, so refused whole.
        cidr: "2002::/16",
        name: "6to4",
        rfc: "RFC 3056",
        network: v6(0x2002, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 16,
    },
    SpecialRange {
        cidr: "2620:4f:8000::/48",
        name: "direct delegation AS112 service (DNS sink)",
        rfc: "RFC 7534",
        network: v6(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0),
        prefix_len: 48,
    },
    SpecialRange {
        cidr: "3fff::/20",
        name: "documentation",
        rfc: "RFC 9637",
        network: v6(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 20,
    },
    SpecialRange {
        cidr: "5f00::/16",
        name: "segment routing (SRv6) SIDs",
        rfc: "RFC 9602",
        network: v6(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 16,
    },
    SpecialRange {
        cidr: "fc00::/7",
        name: "unique-local",
        rfc: "RFC 4193",
        network: v6(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 7,
    },
    SpecialRange {
        cidr: "fe80::/10",
        name: "link-local unicast",
        rfc: "RFC 4291",
        network: v6(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 10,
    },
    SpecialRange {
        cidr: "fec0::/10",
        name: "site-local (deprecated)",
        rfc: "RFC 3879",
        network: v6(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 10,
    },
    SpecialRange {
        cidr: "ff00::/8",
        name: "multicast",
        rfc: "RFC 4291",
        network: v6(0xff00, 0, 0, 0, 0, 0, 0, 0),
        prefix_len: 8,
    },
];

/// The special-purpose block that makes `ip` unreachable for an action — the
/// first matching row of [`IPV4_SPECIAL`] or [`IPV6_SPECIAL`], with an IPv6
/// address that carries an IPv4 one ([`IPV4_EMBEDDING`]) judged by the IPv4
/// address — or `None` when `ip` is public. Use the row to say *why* an
/// address was refused.
pub fn special_purpose_range(ip: IpAddr) -> Option<&'static SpecialRange> {
    match ip {
        IpAddr::V4(_) => IPV4_SPECIAL.iter().find(|r| r.contains(ip)),
        IpAddr::V6(v6) => {
            if IPV4_EMBEDDING.iter().any(|r| r.contains(ip)) {
                let [.., a, b, c, d] = v6.octets();
                return special_purpose_range(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
            }
            IPV6_SPECIAL.iter().find(|r| r.contains(ip))
        }
    }
}

/// Whether an action may reach `ip`: no special-purpose block contains it
/// (see the module docs for why and what the blocks are).
pub fn is_public_address(ip: IpAddr) -> bool {
    special_purpose_range(ip).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn range_of(text: &str) -> Option<&'static str> {
        special_purpose_range(ip(text)).map(|r| r.cidr)
    }

    /// (address, the block it must fall in, or `None` for public): the
    /// first and last address of every block and the neighbours on both sides.
    const SAMPLES: &[(&str, Option<&str>)] = &[
        ("0.0.0.0", Some("0.0.0.0/8")),
        ("0.255.255.255", Some("0.0.0.0/8")),
        ("1.0.0.0", None),
        ("9.255.255.255", None),
        ("10.0.0.0", Some("10.0.0.0/8")),
        ("10.255.255.255", Some("10.0.0.0/8")),
        ("11.0.0.0", None),
        ("100.63.255.255", None),
        ("100.64.0.0", Some("100.64.0.0/10")),
        ("100.127.255.255", Some("100.64.0.0/10")),
        ("100.128.0.0", None),
        ("126.255.255.255", None),
        ("127.0.0.1", Some("127.0.0.0/8")),
        ("127.255.255.255", Some("127.0.0.0/8")),
        ("128.0.0.0", None),
        ("169.253.255.255", None),
        ("169.254.0.0", Some("169.254.0.0/16")),
        ("169.254.169.254", Some("169.254.0.0/16")),
        ("169.254.255.255", Some("169.254.0.0/16")),
        ("169.255.0.0", None),
        ("172.15.255.255", None),
        ("172.16.0.0", Some("172.16.0.0/12")),
        ("172.31.255.255", Some("172.16.0.0/12")),
        ("172.32.0.0", None),
        ("191.255.255.255", None),
        ("192.0.0.0", Some("192.0.0.0/29")),
        ("192.0.0.7", Some("192.0.0.0/29")),
        ("192.0.0.8", Some("192.0.0.8/32")),
        ("192.0.0.9", Some("192.0.0.0/24")),
        ("192.0.0.169", Some("192.0.0.0/24")),
        ("192.0.0.170", Some("192.0.0.170/32")),
        ("192.0.0.171", Some("192.0.0.171/32")),
        ("192.0.0.172", Some("192.0.0.0/24")),
        ("192.0.0.255", Some("192.0.0.0/24")),
        ("192.0.1.0", None),
        ("192.0.1.255", None),
        ("192.0.2.0", Some("192.0.2.0/24")),
        ("192.0.2.255", Some("192.0.2.0/24")),
        ("192.0.3.0", None),
        ("192.31.195.255", None),
        ("192.31.196.0", Some("192.31.196.0/24")),
        ("192.31.196.255", Some("192.31.196.0/24")),
        ("192.31.197.0", None),
        ("192.52.192.255", None),
        ("192.52.193.0", Some("192.52.193.0/24")),
        ("192.52.193.255", Some("192.52.193.0/24")),
        ("192.52.194.0", None),
        ("192.88.98.255", None),
        ("192.88.99.0", Some("192.88.99.0/24")),
        ("192.88.99.255", Some("192.88.99.0/24")),
        ("192.88.100.0", None),
        ("192.167.255.255", None),
        ("192.168.0.0", Some("192.168.0.0/16")),
        ("192.168.255.255", Some("192.168.0.0/16")),
        ("192.169.0.0", None),
        ("192.175.47.255", None),
        ("192.175.48.0", Some("192.175.48.0/24")),
        ("192.175.48.255", Some("192.175.48.0/24")),
        ("192.175.49.0", None),
        ("198.17.255.255", None),
        ("198.18.0.0", Some("198.18.0.0/15")),
        ("198.19.255.255", Some("198.18.0.0/15")),
        ("198.20.0.0", None),
        ("198.51.99.255", None),
        ("198.51.100.0", Some("198.51.100.0/24")),
        ("198.51.100.255", Some("198.51.100.0/24")),
        ("198.51.101.0", None),
        ("203.0.112.255", None),
        ("203.0.113.0", Some("203.0.113.0/24")),
        ("203.0.113.255", Some("203.0.113.0/24")),
        ("203.0.114.0", None),
        ("223.255.255.255", None),
        ("224.0.0.0", Some("224.0.0.0/4")),
        ("239.255.255.255", Some("224.0.0.0/4")),
        ("240.0.0.0", Some("240.0.0.0/4")),
        ("255.255.255.254", Some("240.0.0.0/4")),
        ("255.255.255.255", Some("255.255.255.255/32")),
        // IPv6.
        ("::", Some("::/128")),
        ("::1", Some("::1/128")),
        ("::2", Some("::/96")),
        ("::10.0.0.1", Some("::/96")),
        ("::8.8.8.8", Some("::/96")),
        ("::255.255.255.255", Some("::/96")),
        ("64:ff9b:0:ffff:ffff:ffff:ffff:ffff", None),
        ("64:ff9b:1::", Some("64:ff9b:1::/48")),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Some("64:ff9b:1::/48")),
        ("64:ff9b:2::", None),
        ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("100::", Some("100::/64")),
        ("100::ffff:ffff:ffff:ffff", Some("100::/64")),
        ("100:0:0:1::", Some("100:0:0:1::/64")),
        ("100:0:0:1:ffff:ffff:ffff:ffff", Some("100:0:0:1::/64")),
        ("100:0:0:2::", None),
        ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001::", Some("2001::/32")),
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some("2001::/32")),
        ("2001:1::1", Some("2001::/23")),
        ("2001:1:ffff:ffff:ffff:ffff:ffff:ffff", Some("2001::/23")),
        ("2001:2::", Some("2001:2::/48")),
        ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Some("2001:2::/48")),
        ("2001:2:1::", Some("2001::/23")),
        ("2001:4:112::1", Some("2001::/23")),
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", Some("2001::/23")),
        ("2001:200::", None),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001:db8::", Some("2001:db8::/32")),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some("2001:db8::/32")),
        ("2001:db9::", None),
        ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2002::", Some("2002::/16")),
        ("2002:a00:1::1", Some("2002::/16")),
        ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("2002::/16")),
        ("2003::", None),
        ("2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", None),
        ("2620:4f:8000::", Some("2620:4f:8000::/48")),
        ("2620:4f:8000:ffff:ffff:ffff:ffff:ffff", Some("2620:4f:8000::/48")),
        ("2620:4f:8001::", None),
        ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("3fff::", Some("3fff::/20")),
        ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", Some("3fff::/20")),
        ("3fff:1000::", None),
        ("5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("5f00::", Some("5f00::/16")),
        ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("5f00::/16")),
        ("5f01::", None),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("fc00::", Some("fc00::/7")),
        ("fd12:3456::1", Some("fc00::/7")),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("fc00::/7")),
        ("fe00::", None),
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("fe80::", Some("fe80::/10")),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("fe80::/10")),
        ("fec0::", Some("fec0::/10")),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("fec0::/10")),
        ("ff00::", Some("ff00::/8")),
        ("ff02::1", Some("ff00::/8")),
        ("ff0e::1", Some("ff00::/8")),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("ff00::/8")),
        // IPv6 that carries IPv4: judged by the IPv4 address.
        ("::ffff:0.0.0.0", Some("0.0.0.0/8")),
        ("::ffff:10.0.0.1", Some("10.0.0.0/8")),
        ("::ffff:127.0.0.1", Some("127.0.0.0/8")),
        ("::ffff:169.254.169.254", Some("169.254.0.0/16")),
        ("::ffff:255.255.255.255", Some("255.255.255.255/32")),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::", Some("0.0.0.0/8")),
        ("64:ff9b::10.0.0.1", Some("10.0.0.0/8")),
        ("64:ff9b::127.0.0.1", Some("127.0.0.0/8")),
        ("64:ff9b::169.254.169.254", Some("169.254.0.0/16")),
        ("64:ff9b::192.168.1.1", Some("192.168.0.0/16")),
        ("64:ff9b::8.8.8.8", None),
    ];

    #[test]
    fn every_block_is_refused_from_its_first_to_its_last_address_and_no_further() {
        let failures: Vec<String> = SAMPLES
            .iter()
            .filter(|(addr, want)| range_of(addr) != *want)
            .map(|(addr, want)| format!("{addr}: got {:?}, want {want:?}", range_of(addr)))
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn public_addresses_are_reachable() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "9.9.9.9",
            "104.16.0.1",
            "2606:4700::1",
            "2606:4700:4700::1111",
            "2a00:1450::1",
            "2a00:1450:4001:80b::200e",
        ] {
            assert!(is_public_address(ip(addr)), "{addr} is public");
        }
    }

    #[test]
    fn internal_and_metadata_addresses_are_not_public() {
        for addr in [
            "127.0.0.1",
            "169.254.169.254",
            "10.1.2.3",
            "::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public_address(ip(addr)), "{addr}");
        }
        let why = special_purpose_range(ip("169.254.169.254")).expect("special");
        assert_eq!((why.name, why.rfc), ("link-local (cloud metadata)", "RFC 3927"));
    }

    /// Every row samples: its first and last address are inside it (or in a
    /// more specific row listed before it), the neighbours outside are not.
    #[test]
    fn every_row_covers_exactly_its_block() {
        let rows = IPV4_SPECIAL.iter().chain(IPV6_SPECIAL).chain(IPV4_EMBEDDING);
        for row in rows {
            let (first, last, before, after) = bounds(row);
            for inside in [first, last] {
                assert!(row.contains(inside), "{} contains {inside}", row.cidr);
            }
            for outside in [before, after].into_iter().flatten() {
                assert!(!row.contains(outside), "{} must not contain {outside}", row.cidr);
            }
        }
    }

    /// First, last, one before and one after the block of `row`.
    fn bounds(row: &SpecialRange) -> (IpAddr, IpAddr, Option<IpAddr>, Option<IpAddr>) {
        match row.network {
            IpAddr::V4(net) => {
                let host = u32::MAX.checked_shr(u32::from(row.prefix_len)).unwrap_or(0);
                let (first, last) = (u32::from(net) & !host, u32::from(net) | host);
                let at = |n: u32| IpAddr::V4(Ipv4Addr::from(n));
                (
                    at(first),
                    at(last),
                    first.checked_sub(1).map(at),
                    last.checked_add(1).map(at),
                )
            }
            IpAddr::V6(net) => {
                let host = u128::MAX.checked_shr(u32::from(row.prefix_len)).unwrap_or(0);
                let (first, last) = (u128::from(net) & !host, u128::from(net) | host);
                let at = |n: u128| IpAddr::V6(Ipv6Addr::from(n));
                (
                    at(first),
                    at(last),
                    first.checked_sub(1).map(at),
                    last.checked_add(1).map(at),
                )
            }
        }
    }

    #[test]
    fn cidr_text_matches_the_block_it_describes() {
        for row in IPV4_SPECIAL.iter().chain(IPV6_SPECIAL).chain(IPV4_EMBEDDING) {
            let (addr, len) = row.cidr.split_once('/').expect("a/len");
            assert_eq!(ip(addr), row.network, "{}", row.cidr);
            assert_eq!(len.parse::<u8>().ok(), Some(row.prefix_len), "{}", row.cidr);
            let (first, ..) = bounds(row);
            assert_eq!(first, row.network, "{} has no host bits set", row.cidr);
            assert!(row.rfc.starts_with("RFC "), "{}", row.cidr);
            assert!(!row.name.is_empty());
        }
        for row in IPV4_SPECIAL {
            assert!(row.network.is_ipv4() && row.prefix_len <= 32, "{}", row.cidr);
        }
        for row in IPV6_SPECIAL.iter().chain(IPV4_EMBEDDING) {
            assert!(row.network.is_ipv6() && row.prefix_len <= 128, "{}", row.cidr);
        }
    }

    /// A row whose whole block sits inside an earlier row would never be
    /// returned: more specific rows must come first.
    #[test]
    fn no_row_is_shadowed_by_an_earlier_one() {
        for table in [IPV4_SPECIAL, IPV6_SPECIAL, IPV4_EMBEDDING] {
            for (i, later) in table.iter().enumerate() {
                for earlier in &table[..i] {
                    let shadowed = earlier.prefix_len <= later.prefix_len && earlier.contains(later.network);
                    assert!(!shadowed, "{} is hidden behind {}", later.cidr, earlier.cidr);
                }
            }
        }
    }

    #[test]
    fn the_two_address_families_never_match_each_other() {
        for row in IPV4_SPECIAL {
            assert!(!row.contains(ip("::")), "{}", row.cidr);
        }
        for row in IPV6_SPECIAL {
            assert!(!row.contains(ip("0.0.0.0")), "{}", row.cidr);
        }
    }
}
