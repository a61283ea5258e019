//! Garbage collection: removes the containers and images cclaunch made, for
//! this peer, for chaincode that is no longer wanted. Only what carries
//! cclaunch's labels is looked at, so a peer's own `dev-*` containers and
//! other peers' chaincode on the same engine are safe.

use std::collections::BTreeSet;

use super::{Collected, Error, Launcher, Selection};
use crate::runtime;

impl Launcher {
    /// Removes the chosen chaincode's containers (running ones too) and images.
    pub async fn gc(&self, selection: &Selection) -> Result<Collected, Error> {
        // A mistyped id to keep would otherwise remove what it meant to keep.
        let (Selection::Only(ids) | Selection::AllBut(ids)) = selection;
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
        let images = self
            .engine
            .list_images(&[(runtime::LABEL_MANAGED, "true")])
            .await
            .map_err(super::engine_only)?;
        let mut removed = BTreeSet::new();
        for (image, labels) in images {
            let Some(id) = labels.get(runtime::LABEL_PACKAGE_ID) else {
                continue;
            };
            // Images carry no peer label: this peer's are those named for it.
            let ours = self
                .names(id)
                .is_ok_and(|n| image == n.image || image == format!("{}:latest", n.image));
            let used = in_use.contains(&image)
                || image
                    .strip_suffix(":latest")
                    .is_some_and(|name| in_use.contains(name));
            if ours && !used && selection.wants(id) && removed.insert(image.clone()) {
                self.engine
                    .remove_image(&image)
                    .await
                    .map_err(super::engine(id))?;
                collected.images.push(image);
            }
        }
        Ok(collected)
    }

    /// The local image a runner's image reference stands for: a reference
    /// by digest in the registry (`registry/image@sha256:...`) is `image`.
    fn local_image<'a>(&self, reference: &'a str) -> &'a str {
        let Some(registry) = &self.registry else {
            return reference;
        };
        reference
            .strip_prefix(registry.address.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split('@').next())
            .unwrap_or(reference)
    }
}
