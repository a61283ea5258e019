//! Names on the swarm: a service is named as `runtime::dns_label` names
//! cluster objects (a DNS label from Fabric's container name); Fabric's name
//! stays in a label and is what cclaunch reports. Its secrets and configs
//! are named after it, per launch.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The label holding Fabric's container name on a service and its files.
pub const LABEL_CONTAINER_NAME: &str = "org.cclaunch.container-name";

/// Secret and config names may have 64 characters; this much of the service
/// name leaves room for the launch and the file's number.
const FILE_PREFIX: usize = 44;

/// The service name of Fabric's container name `container`: the same for the
/// same name, a valid DNS label for any name (`runtime::dns_label`).
pub fn service_name(container: &str) -> String {
    crate::runtime::dns_label::of(container)
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
