//! Security groups as a real firewall: an instance's inbound rules become an
//! nftables table in the instance's own network namespace (stateful: replies
//! to its own connections pass), with everything else dropped. This module
//! only writes the ruleset; the runtime loads it with `nft` inside the
//! namespace. Enforcing in the instance's namespace, rather than on the
//! bridge, is what gives connection tracking without touching host-wide
//! bridge sysctls.

use std::fmt::Write as _;

/// One inbound permission: a protocol, a port range and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// "tcp", "udp", "icmp", "icmpv6", "-1" (all) or a protocol number.
    pub protocol: String,
    /// Port range for TCP and UDP; ICMP type and code for ICMP (-1: any).
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    V4(String),
    V6(String),
}

pub const TABLE: &str = "nimbus_security_groups";

/// The whole table, replacing any previous one in one transaction.
pub fn ruleset(rules: &[Allow]) -> String {
    let mut out = String::new();
    // "add" then "delete" makes the delete safe when no table exists yet.
    let _ = writeln!(out, "add table inet {TABLE}");
    let _ = writeln!(out, "delete table inet {TABLE}");
    let _ = writeln!(out, "table inet {TABLE} {{");
    let _ = writeln!(out, "  chain ingress {{");
    let _ = writeln!(
        out,
        "    type filter hook input priority -100; policy drop;"
    );
    let _ = writeln!(out, "    ct state established,related accept");
    let _ = writeln!(out, "    iifname \"lo\" accept");
    // Address resolution and IPv6 neighbour discovery are not subject to groups.
    let _ = writeln!(
        out,
        "    icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert }} accept"
    );
    for rule in rules {
        let matcher = protocol_match(rule);
        let Some(matcher) = matcher else { continue };
        let v4: Vec<&str> = rule
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::V4(c) => Some(c.as_str()),
                _ => None,
            })
            .collect();
        let v6: Vec<&str> = rule
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::V6(c) => Some(c.as_str()),
                _ => None,
            })
            .collect();
        if !v4.is_empty() && rule.protocol != "icmpv6" && rule.protocol != "58" {
            let _ = writeln!(out, "    ip saddr {{ {} }} {matcher}accept", v4.join(", "));
        }
        if !v6.is_empty() && rule.protocol != "icmp" && rule.protocol != "1" {
            let _ = writeln!(out, "    ip6 saddr {{ {} }} {matcher}accept", v6.join(", "));
        }
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}

/// The part of a rule that matches its protocol and ports (ending in a space),
/// or None for what nftables cannot express here (it is then left out).
fn protocol_match(rule: &Allow) -> Option<String> {
    let ports = |from: Option<i64>, to: Option<i64>| match (from, to) {
        (Some(f), Some(t)) if f >= 0 && t >= 0 && (f, t) != (0, 65535) => {
            if f == t {
                format!("dport {f} ")
            } else {
                format!("dport {f}-{t} ")
            }
        }
        _ => String::new(),
    };
    match rule.protocol.as_str() {
        "-1" | "all" => Some(String::new()),
        "tcp" | "6" => {
            let p = ports(rule.from_port, rule.to_port);
            Some(if p.is_empty() {
                "meta l4proto tcp ".into()
            } else {
                format!("tcp {p}")
            })
        }
        "udp" | "17" => {
            let p = ports(rule.from_port, rule.to_port);
            Some(if p.is_empty() {
                "meta l4proto udp ".into()
            } else {
                format!("udp {p}")
            })
        }
        "icmp" | "1" => Some(match rule.from_port {
            Some(t) if t >= 0 => match rule.to_port {
                Some(c) if c >= 0 => format!("icmp type {t} icmp code {c} "),
                _ => format!("icmp type {t} "),
            },
            _ => "meta l4proto icmp ".into(),
        }),
        "icmpv6" | "58" => Some("meta l4proto ipv6-icmp ".into()),
        number => number
            .parse::<u8>()
            .ok()
            .map(|n| format!("meta l4proto {n} ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rules() {
        let text = ruleset(&[
            Allow {
                protocol: "tcp".into(),
                from_port: Some(80),
                to_port: Some(80),
                sources: vec![Source::V4("0.0.0.0/0".into())],
            },
            Allow {
                protocol: "tcp".into(),
                from_port: Some(3306),
                to_port: Some(3306),
                sources: vec![
                    Source::V4("172.31.0.5".into()),
                    Source::V4("172.31.0.6".into()),
                ],
            },
            Allow {
                protocol: "-1".into(),
                from_port: None,
                to_port: None,
                sources: vec![Source::V6("::/0".into())],
            },
            Allow {
                protocol: "icmp".into(),
                from_port: Some(8),
                to_port: Some(-1),
                sources: vec![Source::V4("10.0.0.0/8".into())],
            },
        ]);
        assert!(text.contains("ip saddr { 0.0.0.0/0 } tcp dport 80 accept"));
        assert!(text.contains("ip saddr { 172.31.0.5, 172.31.0.6 } tcp dport 3306 accept"));
        assert!(text.contains("ip6 saddr { ::/0 } accept"));
        assert!(text.contains("ip saddr { 10.0.0.0/8 } icmp type 8 accept"));
        assert!(text.contains("policy drop"));
    }
}
