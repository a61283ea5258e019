//! What a killed process left half-done on the engine: build containers
//! whose build will never be collected, and chaincode containers created but
//! never started. A sidecar that claimed its peer removes them before it
//! serves, but only those of a creator known to be gone, so a CLI build of
//! the same peer running at that moment is left alone:
//!
//! - made by the CLI: removed when its process is dead (same kernel and pid
//!   namespace, the pid gone or started at another time); of unknown fate
//!   (made elsewhere), left;
//! - made by a sidecar: removed unless its process is known alive (the peer
//!   lock this sidecar holds says no other sidecar of the peer runs; one in
//!   the same pid namespace that is alive serves with another stateDir, and
//!   is left alone);
//! - without a creator label (an older cclaunch): left (`cclaunch gc`);
//! - a prepared container (see `prepared`): left for the next start, unless
//!   it holds TLS files (a start died between putting them in and starting
//!   it): removed, whoever made it.

use super::creator::{self, Fate, Kind, LABEL_CREATOR};
use super::{prepared, Error, Launcher, LABEL_BUILD};
use crate::runtime::{self, ContainerInfo, Runner};

/// What the clean-up removed, by container name, and the chaincode
/// containers it listed and left (for [`Launcher::resume_listed`]: one
/// listing of a thousand containers takes seconds).
#[derive(Debug, Default, Clone)]
pub struct Leftovers {
    pub build_containers: Vec<String>,
    pub unstarted_containers: Vec<String>,
    /// `None` when it listed nothing (a launcher that did not claim the peer).
    pub listed: Option<Vec<ContainerInfo>>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.build_containers.is_empty() && self.unstarted_containers.is_empty()
    }
}

fn is_build(container: &ContainerInfo) -> bool {
    container.labels.contains_key(LABEL_BUILD)
}

impl Launcher {
    /// Removes this peer's build containers and never-started chaincode
    /// containers that a dead process left (see the module's rules). Only
    /// a launcher that claimed the peer does anything.
    pub async fn clean_up_leftovers(&self) -> Result<Leftovers, Error> {
        let mut removed = Leftovers::default();
        if !self.serving() {
            return Ok(removed);
        }
        // Build containers on the builder, chaincode ones where they run,
        // each listing keeping its own kind.
        let builds = self.peer_containers(self.engine.as_ref()).await?;
        // One engine: one listing (seconds, with a thousand containers).
        let chaincode = if self.one_engine() {
            builds.clone()
        } else {
            self.peer_containers(self.runner.as_ref()).await?
        };
        let builds = builds.into_iter().filter(is_build);
        let chaincode: Vec<ContainerInfo> =
            chaincode.into_iter().filter(|c| !is_build(c)).collect();
        removed.listed = Some(chaincode.clone());
        for container in builds.chain(chaincode) {
            let build = is_build(&container);
            let unstarted = !build
                && container.status == "created"
                && container.labels.contains_key(runtime::LABEL_PACKAGE_ID);
            if unstarted && prepared::is_prepared(&container) {
                // Kept for the next start, unless a start that died midway
                // put the TLS files in.
                if !self.holds_secrets(&container).await {
                    continue;
                }
            } else if !(build || unstarted) || !abandoned(&container) {
                continue;
            }
            let creator = container
                .labels
                .get(LABEL_CREATOR)
                .map(|l| creator::read(l))
                .and_then(|c| c.pid);
            let on = if build {
                self.engine.as_ref() as &dyn Runner
            } else {
                self.runner.as_ref()
            };
            match on.remove_container(&container.id).await {
                Ok(()) | Err(runtime::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(container = %container.name, error = %e, "cannot remove a container a dead process left");
                    continue;
                }
            }
            if build {
                tracing::info!(container = %container.name, creator_pid = ?creator, "removed the build container of a process that is gone");
                removed.build_containers.push(container.name);
            } else {
                tracing::info!(container = %container.name, creator_pid = ?creator, "removed a chaincode container created but never started by a process that is gone");
                self.checkpoints.remove(&container.name);
                if let Some(listed) = &mut removed.listed {
                    listed.retain(|c| c.id != container.id);
                }
                removed.unstarted_containers.push(container.name);
            }
        }
        Ok(removed)
    }
}

impl Launcher {
    /// Whether a prepared container holds TLS files (its first one is
    /// enough: a start puts them in at once, in order). Unknown: no.
    async fn holds_secrets(&self, container: &ContainerInfo) -> bool {
        match self
            .runner
            .has_file(&container.id, prepared::FIRST_SECRET)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(container = %container.name, error = %e, "cannot look into a prepared container");
                false
            }
        }
    }
}

/// Whether the process that made `container` is gone for sure (module doc).
fn abandoned(container: &ContainerInfo) -> bool {
    let Some(label) = container.labels.get(LABEL_CREATOR) else {
        return false;
    };
    let creator = creator::read(label);
    match (creator.kind, creator.fate) {
        (_, Fate::Alive) => false,
        (Some(_), Fate::Dead) => true,
        (Some(Kind::Serve), Fate::Unknown) => true,
        _ => false,
    }
}
