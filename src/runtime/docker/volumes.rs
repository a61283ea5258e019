//! Volumes: build caches (made by the containers that mount them), listed
//! and removed.

use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};

use super::{label_filter, within, Docker};
use crate::runtime::{Error, VolumeInfo};

impl Docker {
    pub(super) async fn list_volumes(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<VolumeInfo>, Error> {
        let options = ListVolumesOptions {
            filters: Some(label_filter(labels)),
        };
        let list = within("list volumes of", "engine", self.timeouts.request, async {
            self.client
                .list_volumes(Some(options))
                .await
                .map_err(self.fail("list volumes of", "engine"))
        })
        .await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    pub(super) async fn remove_volume(&self, name: &str) -> Result<(), Error> {
        let remove = async {
            self.client
                .remove_volume(name, None::<RemoveVolumeOptions>)
                .await
                .map_err(self.fail("remove volume", name))
        };
        within("remove volume", name, self.timeouts.slow, remove).await
    }
}
