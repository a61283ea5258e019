//! Names on the swarm: a service name must be a DNS label (at most 63
//! characters of `[a-z0-9-]`, no `-` at either end), which Fabric's container
//! names are not (`_`, `.`, upper case, any length). A service is named by a
//! readable prefix of Fabric's name and a hash of all of it; Fabric's name
//! stays in a label and is what cclaunch reports.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The label holding Fabric's container name on a service and its files.
pub const LABEL_CONTAINER_NAME: &str = "org.cclaunch.container-name";

/// A DNS label's limit.
const MAX_SERVICE: usize = 63;
/// Hex digits of sha256(Fabric's name) that end a service name: 64 bits,
/// so distinct names meet only by a collision nobody will see.
const HASH_HEX: usize = 16;
/// Secret and config names may have 64 characters; this much of the service
/// name leaves room for the launch and the file's number.
const FILE_PREFIX: usize = 44;

/// The service name of Fabric's container name `container`: the same for the
/// same name, a valid DNS label for any name.
pub fn service_name(container: &str) -> String {
    let mut prefix = String::new();
    for c in container.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            prefix.push(c);
        } else if !prefix.is_empty() && !prefix.ends_with('-') {
            prefix.push('-');
        }
        if prefix.len() == MAX_SERVICE - 1 - HASH_HEX {
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

/// A suffix that tells one launch's secrets and configs from another's.
pub fn launch_suffix(service: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!(
        "{service} {now} {} {}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(Sha256::digest(seed.as_bytes()))[..10].to_string()
}

/// The name of file number `index` of a launch (a secret or a config).
pub fn file_name(service: &str, launch: &str, index: usize) -> String {
    let prefix = service[..service.len().min(FILE_PREFIX)].trim_end_matches('-');
    format!("{prefix}-{launch}-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn service_names_are_dns_labels_whatever_fabric_named_the_container() {
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
            let service = service_name(name);
            assert!(is_dns_label(&service), "{name:?} -> {service:?}");
        }
    }

    #[test]
    fn a_service_name_keeps_a_readable_prefix_and_is_stable() {
        let name = "dev-peer0.org1.example.com-mycc_1.0-3a7f";
        let service = service_name(name);
        assert!(
            service.starts_with("dev-peer0-org1-example-com-mycc-1-0-3a7f-"),
            "{service}"
        );
        assert_eq!(
            service.len(),
            "dev-peer0-org1-example-com-mycc-1-0-3a7f-".len() + 16
        );
        assert_eq!(service_name(name), service);
    }

    #[test]
    fn names_that_sanitise_alike_get_distinct_services() {
        let long = "a".repeat(100);
        let pairs = [
            ("peer0-cc_1", "peer0-cc.1"),
            ("Peer0-cc", "peer0-cc"),
            (&long[..90], &long[..91]),
        ];
        for (a, b) in pairs {
            assert_ne!(service_name(a), service_name(b), "{a} / {b}");
        }
    }

    #[test]
    fn file_names_fit_the_limit_and_differ_per_launch() {
        let service = service_name(&"y".repeat(300));
        assert_eq!(service.len(), 63);
        let (a, b) = (launch_suffix(&service), launch_suffix(&service));
        assert_ne!(a, b);
        for index in [0, 4, 99] {
            let name = file_name(&service, &a, index);
            assert!(name.len() <= 64, "{name}");
            assert!(!name.contains("--"), "{name}");
        }
        assert_ne!(file_name(&service, &a, 0), file_name(&service, &b, 0));
    }
}
