//! Cluster object names: a swarm service's and a Kubernetes Pod's name must
//! be a DNS label (at most 63 characters of `[a-z0-9-]`, no `-` at either
//! end), which Fabric's container names are not (`_`, `.`, upper case, any
//! length). Both engines name an object by a readable prefix of Fabric's
//! name and a hash of all of it; Fabric's name stays in a label or
//! annotation, and is what cclaunch reports.

use sha2::{Digest, Sha256};

/// A DNS label's limit.
pub const MAX: usize = 63;
/// Hex digits of sha256(Fabric's name) that end a name: 64 bits, so
/// distinct names meet only by a collision nobody will see.
pub const HASH_HEX: usize = 16;
/// The readable prefix: what is left of a DNS label after `-` and the hash.
const PREFIX: usize = MAX - 1 - HASH_HEX;

/// The object name for Fabric's container name `container`: the same for
/// the same name, a valid DNS label for any name. Lower case, each run of
/// characters outside `[a-z0-9]` one `-`, cut to 46 characters, then `-`
/// and 16 hex digits of sha256 of the unchanged name.
pub fn of(container: &str) -> String {
    let mut prefix = String::new();
    for c in container.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            prefix.push(c);
        } else if !prefix.is_empty() && !prefix.ends_with('-') {
            prefix.push('-');
        }
        if prefix.len() == PREFIX {
            break;
        }
    }
    let prefix = prefix.trim_end_matches('-');
    let hash = hex::encode(Sha256::digest(container.as_bytes()));
    let hash = &hash[..HASH_HEX];
    if prefix.is_empty() {
        format!("cc-{hash}")
    } else {
        format!("{prefix}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn names_are_dns_labels_whatever_fabric_named_the_container() {
        let long = "dev-peer0.org1.example.com-".to_string() + &"x".repeat(200);
        for name in [
            "dev-peer0.org1.example.com-mycc_1.0-3a7f",
            "Net_Peer-MYCC:1.0",
            "___",
            "",
            "-a-",
            "ü-ñ-é",
            long.as_str(),
            "a------b",
        ] {
            let label = of(name);
            assert!(is_dns_label(&label), "{name:?} -> {label:?}");
        }
    }

    #[test]
    fn a_name_keeps_a_readable_prefix_and_is_stable() {
        let name = "dev-peer0.org1.example.com-mycc_1.0-3a7f";
        let label = of(name);
        assert!(
            label.starts_with("dev-peer0-org1-example-com-mycc-1-0-3a7f-"),
            "{label}"
        );
        assert_eq!(
            label.len(),
            "dev-peer0-org1-example-com-mycc-1-0-3a7f-".len() + HASH_HEX
        );
        assert_eq!(of(name), label);
        let long = of(&format!("dev-jdoe-mycc_1.0-{}", "3a7f".repeat(16)));
        assert_eq!(long.len(), MAX);
        assert!(long.starts_with("dev-jdoe-mycc-1-0-3a7f3a7f"), "{long}");
    }

    #[test]
    fn names_that_sanitise_alike_stay_distinct() {
        let long = "a".repeat(100);
        for (a, b) in [
            ("peer0-cc_1", "peer0-cc.1"),
            ("Peer0-cc", "peer0-cc"),
            (&long[..90], &long[..91]),
        ] {
            assert_ne!(of(a), of(b), "{a} / {b}");
        }
    }
}
