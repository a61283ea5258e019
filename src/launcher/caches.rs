//! Build caches kept between builds: Go's build and module caches and npm's
//! cache, each platform's in one volume of cclaunch's, mounted read-write
//! into every build container of that platform on the engine. Version 2 of
//! a chaincode whose dependencies did not change then compiles only what
//! changed.
//!
//! The tools own their caches' consistency: Go's cache and npm's cacache
//! are content-addressed, written atomically, checked on read and safe for
//! concurrent builds, so a cold, corrupt or shared cache costs time, never a
//! wrong build. The caches grow until `gc --caches` removes them.

use crate::config::Config;
use crate::platform::Platform;
use crate::runtime;

/// Where a cache volume is mounted in a build container.
pub(super) const MOUNT: &str = "/cclaunch-cache";

/// A platform's cache: its volume and the env pointing its tools at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cache {
    pub volume: String,
    pub env: Vec<String>,
}

/// The cache of `platform`'s builds, when caches are on. Java builds
/// (Maven or Gradle in javaenv) get none yet.
pub(super) fn of(platform: Platform, config: &Config) -> Option<Cache> {
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
        volume: volume_name(config, platform),
        env,
    })
}

pub(super) fn volume_name(config: &Config, platform: Platform) -> String {
    format!(
        "{}-{}",
        config.cclaunch.build.cache_volume,
        platform.fabric_type().to_ascii_lowercase()
    )
}

/// The labels a cache volume is made with.
pub(super) fn labels(platform: Platform) -> runtime::Labels {
    runtime::Labels::from([
        (runtime::LABEL_MANAGED.to_string(), "true".to_string()),
        (
            runtime::LABEL_CACHE.to_string(),
            platform.fabric_type().to_ascii_lowercase(),
        ),
    ])
}
