//! One build per engine: before compiling, a build looks for an image made
//! from the same inputs for another peer or network on this engine (found by
//! its build key) and names it as this peer's, or pulls what this peer
//! pushed to the registry before. Either costs a tag, not a build.
//!
//! The key covers everything that decides the image's bytes: the package
//! (its id holds the hash of its bytes), the builder and runtime images by
//! id (an image made again under the same name does not match), and the
//! recipe (script, env, mounts, network, Dockerfile). Peer and network ids
//! are not in it: they only name the image.

use sha2::{Digest, Sha256};

use super::image_label;
use crate::config::Config;
use crate::platform::BuildPlan;
use crate::runtime::{self, Engine, Progress, Registry};

/// How the image came to be without a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found {
    /// Another name of the same build on this engine.
    Tagged { from: String },
    /// Pulled from the registry, where this peer pushed it before.
    Pulled,
}

/// The build key of `package_id` built by `plan`, or `None` when the builder
/// image is not on the engine (the build reports that).
pub(super) async fn key(
    engine: &dyn Engine,
    config: &Config,
    package_id: &str,
    plan: &BuildPlan,
    runtime_image: &str,
) -> Result<Option<String>, runtime::Error> {
    let Some(builder) = engine.image_id(&plan.builder_image).await? else {
        return Ok(None);
    };
    let runtime = engine.image_id(runtime_image).await?.unwrap_or_default();
    let build = &config.cclaunch.build;
    let mut hash = Sha256::new();
    let mut field = |value: &str| {
        // Length-prefixed: no two lists of fields hash alike.
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value.as_bytes());
    };
    field("cclaunch build key 1");
    field(package_id);
    field(&builder);
    field(&runtime);
    field(&plan.script);
    for list in [&plan.env, &build.env, &build.mounts] {
        field(&list.len().to_string());
        list.iter().for_each(|v| field(v));
    }
    field(&build.network_mode);
    field(&plan.dockerfile);
    Ok(Some(hex::encode(hash.finalize())))
}

/// Makes `image` from an existing one, if there is one: the same build
/// under another name on this engine, else this image in the registry.
pub(super) async fn existing(
    engine: &dyn Engine,
    registry: Option<&Registry>,
    image: &str,
    package_id: &str,
    key: Option<&str>,
    progress: &dyn Progress,
) -> Result<Option<Found>, runtime::Error> {
    for (label, value) in key
        .map(|k| image_label::same_build(package_id, k))
        .into_iter()
        .flatten()
    {
        let same = engine.list_images(label, Some(&value)).await?;
        // Its labels say it is cclaunch's build of this very package.
        let same = same
            .into_iter()
            .find(|(_, labels)| image_label::package_id(labels) == Some(package_id));
        if let Some((from, _)) = same {
            progress.stage(&format!(
                "the same build exists as {from}: naming it {image}"
            ));
            engine.tag_image(&from, image).await?;
            return Ok(Some(Found::Tagged { from }));
        }
    }
    if let Some(registry) = registry {
        if engine.fetch_published(image, registry, progress).await? {
            progress.stage(&format!(
                "pulled {image} from the registry {}",
                registry.address
            ));
            return Ok(Some(Found::Pulled));
        }
    }
    Ok(None)
}
