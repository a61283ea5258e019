//! Garbage collection: removes the containers and images cclaunch made, for
//! this peer, for chaincode that is no longer wanted. Only what carries
//! cclaunch's labels is looked at, so a peer's own `dev-*` containers and
//! other peers' chaincode on the same engine are safe.

use std::collections::{BTreeMap, BTreeSet};

use super::{image_label, Collected, Error, Launcher, Selection};
use crate::platform::Platform;
use crate::runtime;

impl Launcher {
    /// Removes the chosen chaincode's containers (running ones too) and images.
    pub async fn gc(&self, selection: &Selection) -> Result<Collected, Error> {
        // A mistyped id to keep would otherwise remove what it meant to keep.
        let (Selection::Only(ids) | Selection::AllBut(ids)) = selection else {
            return self.gc_caches().await;
        };
        for id in ids {
            crate::ccid::check(id)?;
        }
        let mut collected = Collected::default();
        let containers = self.peer_containers(self.runner.as_ref()).await?;
        // Images that containers left standing still run: kept, whatever
        // package id they were built for (`image_of` starts one package's
        // image under another chaincode's name).
        let mut in_use = BTreeSet::new();
        for container in containers {
            let Some(id) = container.labels.get(runtime::LABEL_PACKAGE_ID) else {
                continue;
            };
            if selection.wants(id) {
                self.remove_container(id, &container.name).await?;
                collected.containers.push(container.name);
            } else {
                in_use.insert(self.local_image(&container.image).to_string());
            }
        }
        // One row per name: an image built once for several peers (see
        // `reuse`) loses only this peer's names, its registry tag included.
        let mut images = BTreeMap::new();
        for (key, value) in image_label::LISTINGS {
            let listed = self
                .engine
                .list_images(key, value)
                .await
                .map_err(super::engine_only)?;
            images.extend(listed);
        }
        for (name, labels) in images {
            let Some(id) = image_label::package_id(&labels) else {
                continue;
            };
            let local = self.local_image(&name);
            // Images carry no peer label: this peer's are those named for it.
            let ours = self.names(id).is_ok_and(|n| local == n.image);
            if ours && !in_use.contains(local) && selection.wants(id) {
                self.engine
                    .remove_image(&name)
                    .await
                    .map_err(super::engine(id))?;
                collected.images.push(name);
            }
        }
        Ok(collected)
    }

    /// Removes this peer's build cache volumes (see `caches`), and the one
    /// volume per platform that older releases shared among every peer; one
    /// a build uses at the time is refused by the engine, and named in the
    /// error.
    async fn gc_caches(&self) -> Result<Collected, Error> {
        let volumes = self
            .engine
            .list_volumes(&[(runtime::LABEL_MANAGED, "true")])
            .await
            .map_err(super::engine_only)?;
        let mut collected = Collected::default();
        for volume in volumes {
            let label = |key| volume.labels.get(key).map(String::as_str);
            let Some(Ok(platform)) = label(runtime::LABEL_CACHE).map(Platform::from_type) else {
                continue;
            };
            let shared = super::caches::shared_name(&self.config, platform);
            let peer = &self.config.peer;
            let ours = volume.name == shared
                || (volume.name.starts_with(&format!("{shared}-"))
                    && label(runtime::LABEL_PEER_ID) == Some(peer.id.as_str())
                    && label(runtime::LABEL_NETWORK_ID) == Some(peer.network_id.as_str()));
            if !ours {
                continue;
            }
            self.engine
                .remove_volume(&volume.name)
                .await
                .map_err(super::engine_only)?;
            collected.volumes.push(volume.name);
        }
        Ok(collected)
    }

    /// The local image name a reference stands for: `image:latest` and, in
    /// the registry, `registry/image@sha256:...` and `registry/image:latest`
    /// are `image`.
    fn local_image<'a>(&self, reference: &'a str) -> &'a str {
        let name = self
            .registry
            .as_ref()
            .and_then(|r| reference.strip_prefix(r.address.as_str()))
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split('@').next())
            .unwrap_or(reference);
        name.strip_suffix(":latest").unwrap_or(name)
    }
}
