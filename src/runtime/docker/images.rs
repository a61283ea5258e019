//! Images: inspect, build from a context, tag, remove, list by labels, push
//! to a registry and pull back from it.

use std::collections::HashMap;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptions, CreateImageOptions, ListImagesOptions, PushImageOptions, RemoveImageOptions,
    TagImageOptions,
};
use futures_util::StreamExt;

use super::{label_filter, within, Docker};
use crate::runtime::{Error, Image, ImageBuild, Labels, Progress, Push, Registry};

/// The tag pushed: Fabric's image names carry none.
const TAG: &str = "latest";

impl Docker {
    pub(super) async fn image_labels(&self, image: &str) -> Result<Option<Labels>, Error> {
        Ok(self.inspect_image(image).await?.map(|i| i.labels))
    }

    pub(super) async fn inspect_image(&self, image: &str) -> Result<Option<Image>, Error> {
        let inspect = async {
            match self.client.inspect_image(image).await {
                Ok(found) => Ok(Some(Image {
                    id: found.id.unwrap_or_default(),
                    labels: found.config.and_then(|c| c.labels).unwrap_or_default(),
                })),
                Err(e) => match self.fail("inspect image", image)(e) {
                    Error::NotFound { .. } => Ok(None),
                    e => Err(e),
                },
            }
        };
        within("inspect image", image, self.timeouts.request, inspect).await
    }

    pub(super) async fn image_id(&self, image: &str) -> Result<Option<String>, Error> {
        let inspect = async {
            match self.client.inspect_image(image).await {
                Ok(found) => Ok(found.id),
                Err(e) => match self.fail("inspect image", image)(e) {
                    Error::NotFound { .. } => Ok(None),
                    e => Err(e),
                },
            }
        };
        within("inspect image", image, self.timeouts.request, inspect).await
    }

    /// `target` is a name as Fabric's (no tag: `latest`) or `repo:tag`.
    pub(super) async fn tag_image(&self, source: &str, target: &str) -> Result<(), Error> {
        let (repo, tag) = split_tag(target);
        let tag = async {
            let options = TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
            };
            self.client
                .tag_image(source, Some(options))
                .await
                .map_err(self.fail("tag image", source))
        };
        within("tag image", source, self.timeouts.request, tag).await
    }

    pub(super) async fn build_image(
        &self,
        build: &ImageBuild,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let ImageBuild {
            tag,
            labels,
            context,
            pull,
            network_mode,
        } = build;
        let file = tokio::fs::File::open(context)
            .await
            .map_err(|source| Error::Io {
                context: format!("opening build context {}", context.display()),
                source,
            })?;
        let body = tokio_util::io::ReaderStream::new(file);
        let options = BuildImageOptions {
            t: Some(tag.to_string()),
            labels: Some(labels.clone()),
            pull: pull.then(|| "1".to_string()),
            networkmode: (!network_mode.is_empty()).then(|| network_mode.to_string()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut stream =
            self.client
                .build_image(options, None, Some(bollard::body_try_stream(body)));
        while let Some(item) = stream.next().await {
            let info = item.map_err(self.fail("build image", tag))?;
            if let Some(detail) = info.error_detail {
                return Err(Error::ImageBuildFailed {
                    image: tag.to_string(),
                    message: detail.message.unwrap_or_default(),
                });
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    progress.line(line);
                }
            }
        }
        Ok(())
    }

    pub(super) async fn remove_image(&self, image: &str) -> Result<(), Error> {
        let remove = async {
            self.client
                .remove_image(image, None::<RemoveImageOptions>, None)
                .await
                .map(|_| ())
                .map_err(self.fail("remove image", image))
        };
        within("remove image", image, self.timeouts.slow, remove).await
    }

    pub(super) async fn list_images(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, Labels)>, Error> {
        let filters = match value {
            Some(value) => label_filter(&[(key, value)]),
            // The engine's `label=key`: the label is there, whatever its value.
            None => HashMap::from([("label".to_string(), vec![key.to_string()])]),
        };
        let options = ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let images = within("list images of", "engine", self.timeouts.request, async {
            self.client
                .list_images(Some(options))
                .await
                .map_err(self.fail("list images of", "engine"))
        })
        .await?;
        let mut rows = Vec::new();
        for image in images {
            let mut names: Vec<String> = image
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect();
            if names.is_empty() {
                names.push(image.id);
            }
            rows.extend(names.into_iter().map(|n| (n, image.labels.clone())));
        }
        Ok(rows)
    }

    /// Tags `image` as `registry/image`, pushes it (unless it was pushed
    /// before and `push` allows that) and reads back its digest.
    pub(super) async fn publish(
        &self,
        image: &str,
        registry: &Registry,
        push: Push,
        progress: &dyn Progress,
    ) -> Result<String, Error> {
        let repo = published_repo(image, registry);
        if push == Push::IfNotPushed {
            if let Some(reference) = self.pushed(image, &repo).await? {
                return Ok(reference);
            }
        }
        let tag = async {
            let options = TagImageOptions {
                repo: Some(repo.clone()),
                tag: Some(TAG.into()),
            };
            self.client
                .tag_image(image, Some(options))
                .await
                .map_err(self.fail("tag image", image))
        };
        within("tag image", image, self.timeouts.request, tag).await?;
        progress.stage(&format!("pushing image {repo}"));
        let credentials = credentials(registry);
        let options = PushImageOptions {
            tag: Some(TAG.into()),
            ..Default::default()
        };
        let mut pushing = self
            .client
            .push_image(&repo, Some(options), Some(credentials));
        let mut last = String::new();
        while let Some(item) = pushing.next().await {
            let info = item.map_err(self.fail("push image", &repo))?;
            if let Some(detail) = info.error_detail {
                return Err(Error::PushFailed {
                    image: image.to_string(),
                    registry: registry.address.clone(),
                    message: detail.message.unwrap_or_default(),
                });
            }
            // One line per state, not one per byte counted.
            let line = info.status.unwrap_or_default();
            if !line.is_empty() && line != last {
                progress.line(&line);
                last = line;
            }
        }
        self.pushed(image, &repo)
            .await?
            .ok_or_else(|| Error::PushFailed {
                image: image.to_string(),
                registry: registry.address.clone(),
                message: format!("the engine reports no digest of {repo} after the push"),
            })
    }

    /// Pulls what [`Docker::publish`] pushed for `image` and gives it the
    /// name `image`; `false` when the registry has no such image.
    pub(super) async fn fetch_published(
        &self,
        image: &str,
        registry: &Registry,
        progress: &dyn Progress,
    ) -> Result<bool, Error> {
        let repo = published_repo(image, registry);
        let options = CreateImageOptions {
            from_image: Some(repo.clone()),
            tag: Some(TAG.into()),
            ..Default::default()
        };
        progress.stage(&format!("looking for {repo} in the registry"));
        let mut pulling =
            self.client
                .create_image(Some(options), None, Some(credentials(registry)));
        let mut last = String::new();
        while let Some(item) = pulling.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) => match self.fail("pull image", &repo)(e) {
                    Error::NotFound { .. } => return Ok(false),
                    e => return Err(e),
                },
            };
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_default();
                // The engine streams "manifest unknown" when the registry
                // answered but has no such image.
                if message.contains("manifest unknown") || message.contains("not found") {
                    return Ok(false);
                }
                return Err(Error::PullFailed {
                    image: repo,
                    registry: registry.address.clone(),
                    message,
                });
            }
            let line = info.status.unwrap_or_default();
            if !line.is_empty() && line != last {
                progress.line(&line);
                last = line;
            }
        }
        self.tag_image(&format!("{repo}:{TAG}"), image).await?;
        Ok(true)
    }

    /// The reference by digest of `image` in `repo`, if this engine pushed it.
    async fn pushed(&self, image: &str, repo: &str) -> Result<Option<String>, Error> {
        let inspect = async {
            self.client
                .inspect_image(image)
                .await
                .map_err(self.fail("inspect image", image))
        };
        let found = within("inspect image", image, self.timeouts.request, inspect).await?;
        let prefix = format!("{repo}@sha256:");
        Ok(found
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.starts_with(&prefix)))
    }
}

/// Where `image` goes in `registry`.
fn published_repo(image: &str, registry: &Registry) -> String {
    format!("{}/{}", registry.address, image.trim_end_matches(":latest"))
}

/// Engine 20.10 refuses a push without an X-Registry-Auth header: empty
/// credentials when none are configured.
fn credentials(registry: &Registry) -> DockerCredentials {
    DockerCredentials {
        username: (!registry.username.is_empty()).then(|| registry.username.clone()),
        password: (!registry.password.is_empty()).then(|| registry.password.clone()),
        serveraddress: Some(registry.address.clone()),
        ..Default::default()
    }
}

/// `repo:tag` split at the tag's colon (a registry's port is not a tag).
fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, TAG),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn a_tag_is_split_off_but_a_registry_port_is_not() {
        assert_eq!(split_tag("dev-peer0-cc"), ("dev-peer0-cc", "latest"));
        assert_eq!(split_tag("dev-peer0-cc:v2"), ("dev-peer0-cc", "v2"));
        assert_eq!(
            split_tag("10.0.0.1:5000/dev-peer0-cc"),
            ("10.0.0.1:5000/dev-peer0-cc", "latest")
        );
        assert_eq!(
            split_tag("10.0.0.1:5000/dev-peer0-cc:latest"),
            ("10.0.0.1:5000/dev-peer0-cc", "latest")
        );
    }
}
