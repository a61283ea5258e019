//! Prepared containers: a chaincode's next container, created ahead of its
//! start (after a build, after a stop) so a Start only puts the TLS files in
//! and starts it. A prepared container is the container a Start would create
//! minus its files: same name, image, args, env, host config and labels,
//! plus [`LABEL_PREPARED`], the fingerprint of that spec and of the image's
//! id. A Start uses it only while it is never started and its fingerprint
//! and config are those of the container the Start would create; otherwise
//! the Start removes it and creates as always.
//!
//! What a prepared container cannot know (peer address, MSP id, TLS on or
//! off, extra env) comes from how the chaincode was last started (after a
//! stop) or how the last chaincode of this peer was (after a build). TLS
//! files are per-launch secrets: they are never in a prepared container.
//! Only a sidecar (a launcher that claimed its peer) prepares, and only with
//! `cclaunch.prepare`; every Start uses a prepared container that matches.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use super::{creator, env, Launcher};
use crate::config::Config;
use crate::platform::{PeerAddress, Platform};
use crate::runtime::{self, ContainerInfo, ContainerSpec, Engine, Labels, Runner};

pub use crate::runtime::LABEL_PREPARED;

/// The TLS file a Start puts in first: a prepared container holding it was
/// being started when its starter died, and holds secrets.
pub(super) const FIRST_SECRET: &str = env::CLIENT_KEY_PATH;

/// How a chaincode was started: what its next container needs besides the
/// package id and the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profile {
    pub peer_address: PeerAddress,
    pub msp_id: String,
    pub tls: bool,
    pub extra_env: Vec<String>,
    pub platform: Option<Platform>,
    pub image_of: Option<String>,
}

/// The profiles this launcher saw: per chaincode, and the last of the peer.
#[derive(Default)]
pub(super) struct Profiles {
    by_chaincode: HashMap<String, Profile>,
    last: Option<Profile>,
}

/// A chaincode container's spec as a Start makes it, without its files.
pub(super) fn chaincode_spec(
    config: &Config,
    package_id: &str,
    container: &str,
    image: String,
    platform: Platform,
    profile: &Profile,
    labels: Labels,
) -> ContainerSpec {
    ContainerSpec {
        name: container.to_string(),
        image,
        args: platform.args(&profile.peer_address),
        env: env::chaincode_env(
            package_id,
            &config.logging_env(),
            profile.tls,
            &profile.msp_id,
        )
        .into_iter()
        .chain(profile.extra_env.iter().cloned())
        .collect(),
        labels,
        host_config: config.vm.docker.host_config.clone(),
        files: Vec::new(),
    }
}

/// The fingerprint of what a container is made from: its spec (but the
/// label naming the process that made it) and the image's id.
pub(super) fn fingerprint(spec: &ContainerSpec, image_id: &str) -> String {
    let labels: BTreeMap<&String, &String> = spec
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != creator::LABEL_CREATOR && k.as_str() != LABEL_PREPARED)
        .collect();
    let canonical = serde_json::json!({
        "name": spec.name,
        "image": spec.image,
        "imageId": image_id,
        "args": spec.args,
        "env": spec.env,
        "labels": labels,
        "hostConfig": spec.host_config.settings(),
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Whether a listed or inspected container is a prepared one: labelled so
/// and never started.
pub fn is_prepared(container: &ContainerInfo) -> bool {
    container.labels.contains_key(LABEL_PREPARED) && container.status == "created"
}

/// Why a prepared container is not the one a Start would create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mismatch {
    NotPrepared,
    Fingerprint,
    Image,
    Args,
    Env,
    Labels,
}

impl Mismatch {
    pub(super) fn what(self) -> &'static str {
        match self {
            Mismatch::NotPrepared => "it is not a prepared container",
            Mismatch::Fingerprint => {
                "it was made from another spec (peer address, MSP id, TLS, env, host config, labels or image)"
            }
            Mismatch::Image => "its image differs",
            Mismatch::Args => "its args differ",
            Mismatch::Env => "its env differs",
            Mismatch::Labels => "its labels differ",
        }
    }
}

/// Checks an inspected container against the spec a Start would create
/// from an image of id `image_id`: the fingerprint it was made with, and
/// what the engine says of it (its env holds the image's too, and its
/// labels the image's).
pub(super) fn check(
    found: &ContainerInfo,
    spec: &ContainerSpec,
    image_id: &str,
) -> Result<(), Mismatch> {
    if !is_prepared(found) {
        return Err(Mismatch::NotPrepared);
    }
    if found.labels.get(LABEL_PREPARED).map(String::as_str) != Some(&fingerprint(spec, image_id)) {
        return Err(Mismatch::Fingerprint);
    }
    if found.image != spec.image {
        return Err(Mismatch::Image);
    }
    if found.args != spec.args {
        return Err(Mismatch::Args);
    }
    if !spec.env.iter().all(|e| found.env.contains(e)) {
        return Err(Mismatch::Env);
    }
    let labels_match = spec
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != creator::LABEL_CREATOR)
        .all(|(k, v)| found.labels.get(k) == Some(v));
    if !labels_match {
        return Err(Mismatch::Labels);
    }
    Ok(())
}

/// A prepared container a Start took: if the Start is cancelled before it
/// runs, it is removed (it may hold the TLS files by then), the turn held
/// until it is gone so no other Start takes it meanwhile.
pub(super) struct Taken {
    runner: Option<Arc<dyn Runner>>,
    id: String,
    turn: Option<OwnedMutexGuard<()>>,
}

impl Taken {
    pub(super) fn new(
        runner: Arc<dyn Runner>,
        id: &str,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Taken {
        Taken {
            runner: Some(runner),
            id: id.to_string(),
            turn,
        }
    }

    /// The Start finished (either way): the turn back.
    pub(super) fn release(mut self) -> Option<OwnedMutexGuard<()>> {
        self.runner = None;
        self.turn.take()
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        let (Some(runner), Ok(runtime)) =
            (self.runner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        let turn = self.turn.take();
        runtime.spawn(async move {
            if let Err(e) = runner.remove_container(&id).await {
                if !e.is_not_found() {
                    tracing::warn!(container = %id, error = %e, "could not remove the prepared container of a cancelled start");
                }
            }
            drop(turn);
        });
    }
}

/// One preparation, owning what it needs: it runs after the call that
/// asked for it returned.
struct Preparation {
    runner: Arc<dyn Runner>,
    engine: Arc<dyn Engine>,
    config: Config,
    package_id: String,
    container: String,
    image: String,
    labels: Labels,
    profile: Profile,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Preparation {
    /// In the chaincode's turn: nothing if a container of the name exists
    /// (a Start came first, or one is prepared) or the image is gone.
    async fn run(self) {
        let _turn = self.turn.lock_owned().await;
        let package_id = self.package_id.as_str();
        match self.runner.inspect_container(&self.container).await {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(e) => {
                tracing::debug!(chaincode = package_id, error = %e, "not preparing a container");
                return;
            }
        }
        let image = match self.engine.inspect_image(&self.image).await {
            Ok(Some(image)) => image,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(chaincode = package_id, error = %e, "not preparing a container");
                return;
            }
        };
        let platform = match self.profile.platform {
            Some(platform) => platform,
            None => match image
                .labels
                .get(runtime::LABEL_FABRIC_TYPE)
                .and_then(|t| Platform::from_type(t).ok())
            {
                Some(platform) => platform,
                None => return,
            },
        };
        let mut spec = chaincode_spec(
            &self.config,
            package_id,
            &self.container,
            self.image.clone(),
            platform,
            &self.profile,
            self.labels.clone(),
        );
        let print = fingerprint(&spec, &image.id);
        spec.labels.insert(LABEL_PREPARED.to_string(), print);
        match self.runner.create_container(&spec).await {
            Ok(_) => {
                tracing::info!(chaincode = package_id, container = %self.container, "prepared the next container")
            }
            Err(e) => {
                tracing::warn!(chaincode = package_id, container = %self.container, error = %e, "could not prepare the next container")
            }
        }
    }
}

impl Launcher {
    /// Whether Starts may use prepared containers: the runner creates
    /// without running, and the image is the engine's own (no registry).
    pub(super) fn uses_prepared(&self) -> bool {
        self.runner.prepares() && self.registry.is_none()
    }

    /// Remembers how a chaincode was started, for its next container.
    pub(super) fn started_with(&self, package_id: &str, profile: Profile) {
        let mut profiles = self.profiles.lock().unwrap_or_else(|p| p.into_inner());
        profiles.last = Some(profile.clone());
        profiles
            .by_chaincode
            .insert(package_id.to_string(), profile);
    }

    /// After a build: the package's container, started as the peer's last
    /// chaincode was (its peer address, MSP id and TLS; no extra env). Not
    /// when that one ran another package's image (`image_of`, the external
    /// builder's road): there the peer starts the chaincode under an id a
    /// build does not know.
    pub(super) fn prepare_after_build(&self, package_id: &str) {
        let last = {
            let profiles = self.profiles.lock().unwrap_or_else(|p| p.into_inner());
            profiles.last.clone()
        };
        let Some(last) = last.filter(|p| p.image_of.is_none()) else {
            return;
        };
        let profile = Profile {
            extra_env: Vec::new(),
            platform: None,
            ..last
        };
        self.prepare_soon(package_id, profile);
    }

    /// After a stop: the chaincode's container as it was last started.
    pub(super) fn prepare_after_stop(&self, package_id: &str) {
        let profile = {
            let profiles = self.profiles.lock().unwrap_or_else(|p| p.into_inner());
            profiles.by_chaincode.get(package_id).cloned()
        };
        if let Some(profile) = profile {
            self.prepare_soon(package_id, profile);
        }
    }

    /// Creates the chaincode's next container in a task of its own (if
    /// `cclaunch.prepare` and this launcher serves its peer).
    fn prepare_soon(&self, package_id: &str, profile: Profile) {
        if !self.config.cclaunch.prepare || !self.uses_prepared() || !self.serving() {
            return;
        }
        let Ok(names) = self.names(package_id) else {
            return;
        };
        let image_of = profile.image_of.as_deref().unwrap_or(package_id);
        let Ok(image) = self.names(image_of).map(|n| n.image) else {
            return;
        };
        let preparation = Preparation {
            runner: Arc::clone(&self.runner),
            engine: Arc::clone(&self.engine),
            config: self.config.clone(),
            package_id: package_id.to_string(),
            container: names.container.clone(),
            image,
            labels: self.labels(package_id),
            profile,
            turn: self.turn_lock(&names.container),
        };
        let handle = tokio::spawn(preparation.run());
        let mut preparing = self.preparing.lock().unwrap_or_else(|p| p.into_inner());
        preparing.retain(|_, h| !h.is_finished());
        preparing.insert(names.container, handle);
    }

    /// Waits until the preparation of the chaincode's next container asked
    /// for last (if any) is done: whoever wants to see its outcome.
    pub async fn prepared(&self, package_id: &str) {
        let Ok(names) = self.names(package_id) else {
            return;
        };
        let handle = self
            .preparing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&names.container);
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}
