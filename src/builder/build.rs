//! `bin/build SRC META BLD`.
//!
//! golang, node, java: the package is made again from SRC (the peer's
//! extracted code.tar.gz) and META/metadata.json, streamed to the sidecar's
//! Build in chunks (the sidecar need not share this disk), the build output
//! forwarded to stderr, and what was built recorded in BLD/cclaunch.json.
//! The rebuilt package's id differs from the peer's (other gzip bytes), so
//! `run` starts it under the peer's id with `image_of` the rebuilt one.
//!
//! ccaas: no image; connection.json is checked, its templates filled, and it
//! is kept in BLD with metadata.json for `release`.

use std::path::Path;

use anyhow::{Context, Result};

use super::{ccaas, source, Record, Target, CCAAS};
use crate::config::Config;
use crate::launch::Launch;
use crate::package::{self, Limits, Metadata, Package, METADATA_FILE};
use crate::platform::Platform;
use crate::printable::{render, Sgr};

/// Build progress for the peer's log: stderr.
struct Stderr;

impl crate::launch::Progress for Stderr {
    /// The build runs the chaincode's own scripts: their output is shown
    /// as the sidecar logs chaincode output.
    fn line(&self, line: &str) {
        eprintln!("{}", render(line, Sgr::Strip));
    }

    fn stage(&self, stage: &str) {
        eprintln!("cclaunch: {stage}");
    }
}

pub async fn build(
    config: &Config,
    target: &Target,
    src: &Path,
    meta: &Path,
    bld: &Path,
) -> Result<i32> {
    let metadata = super::read_metadata(meta)?;
    let label = metadata.label.clone();
    if metadata.kind.eq_ignore_ascii_case(CCAAS) {
        build_ccaas(config, &metadata, src, meta, bld)
            .with_context(|| format!("chaincode {label} (ccaas)"))?;
    } else {
        build_image(config, target, metadata, src, bld)
            .await
            .with_context(|| format!("chaincode {label}"))?;
    }
    Ok(0)
}

async fn build_image(
    config: &Config,
    target: &Target,
    metadata: Metadata,
    src: &Path,
    bld: &Path,
) -> Result<()> {
    Platform::from_type(&metadata.kind)
        .context("cclaunch builds golang, node and java packages into images, and takes ccaas")?;
    package::validate_label(&metadata.label)?;
    let address = super::address(target)?;

    // The package is checked and written before the sidecar is asked, so a
    // hostile SRC is refused here, whatever the sidecar's state.
    let scratch = tempfile::tempdir().context("cannot make a temp dir (TMPDIR)")?;
    let file = scratch.path().join("package.tar.gz");
    let limit = config.cclaunch.package.max_unpacked_bytes;
    let package_id = tokio::task::spawn_blocking({
        let (src, file, metadata) = (src.to_path_buf(), file.clone(), metadata.clone());
        move || -> Result<String> {
            let code = tempfile::tempfile_in(file.parent().unwrap_or(Path::new(".")))
                .context("cannot make a temp file")?;
            source::code_tar_gz(&src, limit, &code)
                .with_context(|| format!("refusing the chaincode source {}", src.display()))?;
            // Only for the sidecar, never kept: speed over size (see source).
            package::wrap(&metadata, code, &file, flate2::Compression::none())
                .with_context(|| format!("cannot write the package {}", file.display()))
        }
    })
    .await??;
    eprintln!(
        "cclaunch: rebuilt the package from {} as {package_id}; building it through the sidecar at {address}",
        src.display()
    );

    let package = tokio::task::spawn_blocking(move || {
        Package::open(
            &file,
            Limits {
                max_unpacked_bytes: limit,
            },
        )
    })
    .await??;
    let remote = super::connect(target).await?;
    let done =
        remote
            .build(&package, &Stderr)
            .await
            .map_err(|e| match crate::client::answer(&e) {
                Some(_) => anyhow::anyhow!(
                    "the sidecar at {address} could not build it: {}",
                    super::said(&e)
                ),
                None => anyhow::Error::new(e),
            })?;
    eprintln!(
        "cclaunch: {} image {} for {}",
        if done.reused { "reused" } else { "built" },
        done.image,
        done.package_id
    );
    copy_meta_inf(src, bld)?;
    Record {
        kind: metadata.kind,
        label: metadata.label,
        package_id: done.package_id,
        image: done.image,
    }
    .write(bld)
}

fn build_ccaas(
    config: &Config,
    metadata: &Metadata,
    src: &Path,
    meta: &Path,
    bld: &Path,
) -> Result<()> {
    let path = src.join(ccaas::CONNECTION_FILE);
    let kind = std::fs::symlink_metadata(&path)
        .with_context(|| format!("a ccaas package needs {}", path.display()))?
        .file_type();
    if !kind.is_file() {
        anyhow::bail!("{} is not a regular file", path.display());
    }
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let connection: ccaas::Connection = serde_json::from_slice(&text)
        .map_err(|e| crate::excerpt::json_error(&e))
        .with_context(|| format!("{} is not valid connection JSON", path.display()))?;
    let env = std::env::var(ccaas::CONFIG_ENV).ok();
    let values = ccaas::values(
        &config.cclaunch.builder.ccaas.template_values,
        env.as_deref(),
    )?;
    let rendered = connection
        .render(&values)
        .with_context(|| format!("{}", path.display()))?;
    let json = serde_json::to_vec_pretty(&rendered).context("cannot encode connection.json")?;
    // It may carry the peer's client key: readable by the peer's user only.
    super::write_atomic(&bld.join(ccaas::CONNECTION_FILE), &json, 0o600)?;
    let metadata_json = std::fs::read(meta.join(METADATA_FILE))
        .with_context(|| format!("cannot read {}", meta.join(METADATA_FILE).display()))?;
    super::write_atomic(&bld.join(METADATA_FILE), &metadata_json, 0o644)?;
    copy_meta_inf(src, bld)?;
    eprintln!(
        "cclaunch: ccaas chaincode {} will be dialled at {}",
        metadata.label, rendered.address
    );
    Record {
        kind: metadata.kind.clone(),
        label: metadata.label.clone(),
        package_id: String::new(),
        image: String::new(),
    }
    .write(bld)
}

/// SRC/META-INF (CouchDB index definitions) kept in BLD for `release`.
fn copy_meta_inf(src: &Path, bld: &Path) -> Result<()> {
    let from = src.join("META-INF");
    match std::fs::symlink_metadata(&from) {
        Ok(meta) if meta.is_dir() => {
            source::copy_tree(&from, &bld.join("META-INF"))?;
            Ok(())
        }
        Ok(_) => anyhow::bail!("{} is not a directory", from.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", from.display())),
    }
}
