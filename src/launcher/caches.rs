//! Build caches kept between builds: Go's build and module caches and npm's
//! cache, in volumes of cclaunch's mounted read-write into build containers.
//! Version 2 of a chaincode whose dependencies did not change then compiles
//! only what changed.
//!
//! A build runs the chaincode author's code (npm's install scripts), which
//! can write anything into the cache it is given, and Go's and npm's caches
//! trust what they find (an entry is checked against its own hash, not
//! against where it came from). So a cache is never shared between what
//! does not trust each other: each chaincode has its own, per peer and
//! network and per package path (`metadata.json`'s `path`, the same for the
//! versions of one chaincode), and one chaincode can only affect the later
//! builds of packages with its own path on its own peer.
//!
//! The tools own their caches' consistency: Go's cache and npm's cacache
//! are content-addressed, written atomically, checked on read and safe for
//! concurrent builds, so a cold, corrupt or shared cache costs time, never a
//! wrong build. A cache over `cclaunch.build.cacheMaxBytes` is removed after
//! a build ([`trim`]); `gc --caches` removes them all.

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::platform::Platform;
use crate::runtime::{self, Engine};

/// Where a cache volume is mounted in a build container.
pub(super) const MOUNT: &str = "/cclaunch-cache";

/// A platform's cache: its volume and the env pointing its tools at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cache {
    pub volume: String,
    pub env: Vec<String>,
}

/// The cache of the builds of `platform` packages with `path` on this
/// peer, when caches are on. Java builds (Maven or Gradle in javaenv) get
/// none yet.
pub(super) fn of(platform: Platform, path: &str, config: &Config) -> Option<Cache> {
    if !config.cclaunch.build.caches {
        return None;
    }
    let env = match platform {
        Platform::Golang => vec![
            format!("GOCACHE={MOUNT}/go-build"),
            format!("GOMODCACHE={MOUNT}/go-mod"),
        ],
        Platform::Node => vec![format!("npm_config_cache={MOUNT}/npm")],
        Platform::Java => return None,
    };
    Some(Cache {
        volume: volume_name(config, platform, path),
        env,
    })
}

/// `<cacheVolume>-<platform>-<scope>`: the scope is 16 hex digits of
/// SHA-256 of network id, peer id and package path, NUL between them (so
/// `a`+`bc` and `ab`+`c` differ).
pub(super) fn volume_name(config: &Config, platform: Platform, path: &str) -> String {
    let peer = &config.peer;
    let mut hash = Sha256::new();
    for part in [peer.network_id.as_str(), peer.id.as_str(), path] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!(
        "{}-{}",
        shared_name(config, platform),
        &hex::encode(hash.finalize())[..16]
    )
}

/// The name every cache volume of `platform` starts with; the whole name of
/// the one volume older cclaunch releases shared among every peer.
pub(super) fn shared_name(config: &Config, platform: Platform) -> String {
    format!(
        "{}-{}",
        config.cclaunch.build.cache_volume,
        platform.fabric_type().to_ascii_lowercase()
    )
}

/// The labels a cache volume is made with: cclaunch's, its platform, and
/// the peer whose `gc --caches` removes it.
pub(super) fn labels(platform: Platform, config: &Config) -> runtime::Labels {
    runtime::Labels::from([
        (runtime::LABEL_MANAGED.to_string(), "true".to_string()),
        (
            runtime::LABEL_CACHE.to_string(),
            platform.fabric_type().to_ascii_lowercase(),
        ),
        (runtime::LABEL_PEER_ID.to_string(), config.peer.id.clone()),
        (
            runtime::LABEL_NETWORK_ID.to_string(),
            config.peer.network_id.clone(),
        ),
    ])
}

/// After a build whose cache volume held more than `max` bytes when it
/// began (`kib`, measured in its container before the build's code ran: see
/// [`job::Job::cache_cap`](super::job::Job::cache_cap)), once that container
/// is gone: removes the volume, and the next build fills it afresh. The
/// engine refuses to remove a volume another build is using, so no build
/// loses its cache midway; a later build's measurement tries again. A cap is
/// checked one build late, which bounds a cache to the cap plus what one
/// build adds.
pub(super) async fn trim(
    engine: &dyn Engine,
    volume: &str,
    kib: Option<u64>,
    max: u64,
    chaincode: &str,
) {
    let Some(bytes) = kib.map(|kib| kib.saturating_mul(1024)) else {
        if max > 0 {
            tracing::debug!(
                chaincode,
                volume,
                "the build cache was not measured (no du in the builder image?)"
            );
        }
        return;
    };
    if max == 0 || bytes <= max {
        return;
    }
    match engine.remove_volume(volume).await {
        Ok(()) => tracing::info!(
            chaincode,
            volume,
            bytes,
            max,
            "build cache over cclaunch.build.cacheMaxBytes: removed; the next build fills it afresh"
        ),
        Err(e) => {
            tracing::debug!(chaincode, volume, error = %e, "build cache over its cap, not removed (in use?)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(network: &str, peer: &str) -> Config {
        let mut config = Config::load_with_env(None, |_| None).expect("defaults");
        config.peer.network_id = network.to_string();
        config.peer.id = peer.to_string();
        config
    }

    #[test]
    fn each_chaincode_of_each_peer_has_a_cache_of_its_own() {
        let (go, node) = (Platform::Golang, Platform::Node);
        let a = config("net", "peer0");
        let name = volume_name(&a, go, "example.com/cc");
        assert!(name.starts_with("cclaunch-cache-golang-"), "{name}");
        assert_eq!(name.len(), "cclaunch-cache-golang-".len() + 16);
        // The versions of one chaincode share it.
        assert_eq!(name, volume_name(&a, go, "example.com/cc"));
        let others = [
            volume_name(&a, go, "example.com/other"),
            volume_name(&a, node, "example.com/cc"),
            volume_name(&config("net", "peer1"), go, "example.com/cc"),
            volume_name(&config("net2", "peer0"), go, "example.com/cc"),
            // The separator keeps the parts apart.
            volume_name(&config("ne", "tpeer0"), go, "example.com/cc"),
        ];
        for other in &others {
            assert_ne!(&name, other);
        }
        let labels = labels(go, &a);
        assert_eq!(labels[runtime::LABEL_PEER_ID], "peer0");
        assert_eq!(labels[runtime::LABEL_NETWORK_ID], "net");
        assert!(of(Platform::Java, "x", &a).is_none());
    }
}
