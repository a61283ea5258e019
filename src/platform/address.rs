//! The peer address chaincode dials back, `host:port`. Fabric puts it into
//! the container's command line as given, and for Node into a `/bin/sh -c`
//! script, unquoted; cclaunch keeps those byte for byte, so the address is
//! checked first: a host name, an IPv4 address or a bracketed IPv6 address,
//! and a port. What passes holds only letters, digits and `._-:[]`: nothing
//! a shell could expand, split or redirect (brackets can only glob-match a
//! file the chaincode ships itself).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::excerpt::quote;

/// Longest host name (RFC 1035), and longest label in it.
const HOST_MAX: usize = 253;
const LABEL_MAX: usize = 63;

/// A checked `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer address {} is not host:port (a host name, an IPv4 address or a bracketed IPv6 address, then a port from 1 to 65535): {why}", quote(address))]
pub struct Invalid {
    pub address: String,
    pub why: &'static str,
}

impl PeerAddress {
    pub fn parse(text: &str) -> Result<PeerAddress, Invalid> {
        let invalid = |why| {
            Err(Invalid {
                address: text.to_string(),
                why,
            })
        };
        let Some((host, port)) = text.rsplit_once(':') else {
            return invalid("no ':' before the port");
        };
        let port_ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65535));
        if !port_ok {
            return invalid("the port must be a number from 1 to 65535");
        }
        if let Some(inner) = host.strip_prefix('[') {
            let ok = inner
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
            if !ok {
                return invalid("the part in brackets is not an IPv6 address");
            }
        } else if host.contains(':') {
            return invalid("an IPv6 address goes in brackets, as in [::1]:7052");
        } else if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            if host.parse::<Ipv4Addr>().is_err() {
                return invalid("the host is not an IPv4 address");
            }
        } else if let Err(why) = check_host_name(host) {
            return invalid(why);
        }
        Ok(PeerAddress(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Dot-separated labels of letters, digits, `-` and `_` (container and
/// compose service names use `_`), none empty or starting or ending with `-`.
fn check_host_name(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("the host is empty");
    }
    if host.len() > HOST_MAX {
        return Err("the host name is longer than 253 characters");
    }
    for label in host.split('.') {
        let chars_ok = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > LABEL_MAX || !chars_ok {
            return Err(
                "a host name is dot-separated labels of 1 to 63 letters, digits, '-' and '_'",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a host name label may not start or end with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_ipv4_and_bracketed_ipv6_with_a_port_pass() {
        for good in [
            "peer0:7052",
            "peer0.org1.example.com:7052",
            "peer0_org1:7052",
            "127.0.0.1:7052",
            "10.0.0.2:1",
            "[::1]:7052",
            "[fe80::1:2]:65535",
            "localhost:7052",
        ] {
            assert_eq!(
                PeerAddress::parse(good).map(|a| a.to_string()),
                Ok(good.to_string())
            );
        }
    }

    #[test]
    fn anything_a_shell_could_act_on_is_refused() {
        for bad in [
            "peer0:7052$(touch /tmp/x)",
            "$(id):7052",
            "`id`:7052",
            "peer0;id:7052",
            "peer0 7052:1",
            "peer0:7052 --x",
            "peer0\n:7052",
            "peer0|x:7052",
            "peer0&:7052",
            "peer0>x:7052",
            "pe'er:7052",
            "pe\"er:7052",
            "pe\\er:7052",
            "*:7052",
            "pe?r:7052",
            "~:7052",
            "{a,b}:7052",
            "-peer:7052",
            "peer-:7052",
            "peer..x:7052",
            "peer0",
            "peer0:",
            ":7052",
            "peer0:0",
            "peer0:65536",
            "peer0:+80",
            "peer0:007052",
            "::1:7052",
            "[::1:7052",
            "[x]:7052",
            "1.2.3:7052",
            "256.0.0.1:7052",
            "pé:7052",
        ] {
            let error = PeerAddress::parse(bad).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with("peer address \""), "{bad:?}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
        let long = format!("{}:7052", "a.".repeat(200));
        assert!(PeerAddress::parse(&long).is_err());
        assert!(PeerAddress::parse(&format!("{}:1", "a".repeat(64))).is_err());
    }
}
