//! Images: inspect, build from a context, remove, list by labels.

use bollard::query_parameters::{BuildImageOptions, ListImagesOptions, RemoveImageOptions};
use futures_util::StreamExt;

use super::{label_filter, within, Docker};
use crate::runtime::{Error, ImageBuild, Labels, Progress};

impl Docker {
    pub(super) async fn image_labels(&self, image: &str) -> Result<Option<Labels>, Error> {
        let inspect = async {
            match self.client.inspect_image(image).await {
                Ok(found) => Ok(Some(
                    found.config.and_then(|c| c.labels).unwrap_or_default(),
                )),
                Err(e) => match self.fail("inspect image", image)(e) {
                    Error::NotFound { .. } => Ok(None),
                    e => Err(e),
                },
            }
        };
        within("inspect image", image, self.timeouts.request, inspect).await
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
        labels: &[(&str, &str)],
    ) -> Result<Vec<(String, Labels)>, Error> {
        let options = ListImagesOptions {
            filters: Some(label_filter(labels)),
            ..Default::default()
        };
        let images = within("list images of", "engine", self.timeouts.request, async {
            self.client
                .list_images(Some(options))
                .await
                .map_err(self.fail("list images of", "engine"))
        })
        .await?;
        Ok(images
            .into_iter()
            .map(|i| (i.repo_tags.into_iter().next().unwrap_or(i.id), i.labels))
            .collect())
    }
}
