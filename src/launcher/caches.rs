//! Build caches kept between builds: Go's build and module caches and npm's
//! cache, each platform's in one volume of cclaunch's, mounted read-write
//! into every build container of that platform on the engine. Version 2 of
//! a chaincode whose dependencies did not change then compiles only what
//! changed.
//!
//! The tools own their caches' consistency: Go's cache and npm's cacache
//! are content-addressed, written atomically, checked on read and safe for
//! concurrent builds, so a cold, corrupt or shared cache costs time, never a
//! wrong build. What cclaunch adds is the bound: after a build, the cache is
//! measured, and one grown past `cclaunch.build.cacheMaxBytes` is removed
//! (the engine refuses while a build uses it; the next check catches it).

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::job::{self, Job};
use crate::config::Config;
use crate::platform::Platform;
use crate::runtime::{self, Engine, Progress};

/// Where a cache volume is mounted in a build container.
pub(super) const MOUNT: &str = "/cclaunch-cache";

/// How long measuring a cache may take.
const MEASURE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

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

/// Measures `cache` in a container of `image` (a builder: it has a shell
/// and `du`), and removes the volume when it is over the limit. Runs after
/// a build, off the caller's path; one at a time per launcher.
pub(super) async fn trim(
    engine: Arc<dyn Engine>,
    config: Config,
    platform: Platform,
    image: String,
    busy: Arc<tokio::sync::Mutex<()>>,
) {
    let Ok(_one) = busy.try_lock() else {
        return;
    };
    let volume = volume_name(&config, platform);
    // Gone (gc --caches): measuring would only make it again, empty.
    match engine
        .list_volumes(&[(runtime::LABEL_MANAGED, "true")])
        .await
    {
        Ok(volumes) if volumes.iter().any(|v| v.name == volume) => {}
        _ => return,
    }
    // The cache's, not a peer's or a chaincode's: it serves them all.
    let mut labels = self::labels(platform);
    labels.insert(super::LABEL_BUILD.to_string(), "true".to_string());
    let job = Job {
        image,
        script: format!("du -sk {MOUNT} | cut -f1"),
        env: Vec::new(),
        network_mode: "none".into(),
        mounts: Vec::new(),
        volume: Some((volume.clone(), self::labels(platform))),
        labels,
        deadline: tokio::time::Instant::now() + MEASURE_TIMEOUT,
        cancel: CancellationToken::new(),
    };
    let seen = Lines::default();
    // An empty tar (its two zero blocks) as the job's code.
    let empty: runtime::ByteStream = Box::pin(futures_util::stream::once(async {
        Ok(bytes::Bytes::from_static(&[0; 1024]))
    }));
    if let Err(error) = job::run(&engine, &job, empty, &seen).await {
        tracing::warn!(cache = %volume, ?error, "could not measure the build cache");
        return;
    }
    let kib = seen.last().and_then(|l| l.trim().parse::<u64>().ok());
    let Some(bytes) = kib.map(|k| k.saturating_mul(1024)) else {
        tracing::warn!(cache = %volume, "measuring the build cache gave no size");
        return;
    };
    let limit = config.cclaunch.build.cache_max_bytes;
    if bytes <= limit {
        tracing::debug!(cache = %volume, bytes, limit, "build cache within its limit");
        return;
    }
    match engine.remove_volume(&volume).await {
        Ok(()) => {
            tracing::info!(cache = %volume, bytes, limit, "build cache over its limit: removed")
        }
        Err(error) => {
            tracing::info!(cache = %volume, bytes, limit, %error, "build cache over its limit, in use: left for the next check")
        }
    }
}

/// The lines a measuring job printed.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Lines {
    fn last(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
    }
}

impl Progress for Lines {
    fn line(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() < 16 {
            lines.push(line.to_string());
        }
    }

    fn stage(&self, _stage: &str) {}
}
