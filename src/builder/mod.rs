//! Fabric's external builder entry points (`bin/detect`, `bin/build`,
//! `bin/release`, `bin/run`), so a stock peer uses a cclaunch sidecar through
//! core.yaml alone (docs/BUILDER.md).
//!
//! The peer runs each verb as a program with a pruned environment (its
//! `propagateEnvironment` list plus PATH, LD_LIBRARY_PATH, LIBPATH, TMPDIR) and
//! logs only its stderr, so every verb reports on stderr and reads nothing
//! from HOME or other variables the peer drops. `build` and `run` talk to the
//! sidecar (its address from `CCLAUNCH_SERVER` or `--server`); `detect` and
//! `release`, and the whole ccaas path, need no sidecar.

mod build;
pub mod ccaas;
mod detect;
mod install;
mod release;
mod run;
pub mod source;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::client::{self, Address, ClientTls, Remote};
use crate::package::{Metadata, METADATA_FILE};

pub use build::build;
pub use detect::detect;
pub use install::{install, Install};
pub use release::release;
pub use run::run;

/// What `build` leaves in BLD for `release` and `run`.
pub const RECORD_FILE: &str = "cclaunch.json";

/// The metadata.json type of chaincode the peer dials (no image, no `run`).
pub const CCAAS: &str = "ccaas";

/// BLD/cclaunch.json: what was built, so `run` starts the right image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// metadata.json's type as the peer gave it.
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
    /// The id of the package `build` rebuilt from SRC (not the peer's id: the
    /// bytes differ), whose image `run` starts. Empty for ccaas.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub package_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
}

impl Record {
    fn is_ccaas(&self) -> bool {
        self.kind.eq_ignore_ascii_case(CCAAS)
    }

    fn read(bld: &Path) -> Result<Record> {
        let path = bld.join(RECORD_FILE);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {}: was BLD made by `cclaunch builder build`?",
                path.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    fn write(&self, bld: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("cannot encode the build record")?;
        write_atomic(&bld.join(RECORD_FILE), &json, 0o644)
    }
}

/// META/metadata.json, as the peer wrote it from the package.
fn read_metadata(meta: &Path) -> Result<Metadata> {
    let path = meta.join(METADATA_FILE);
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Metadata::from_json(&text).with_context(|| {
        format!(
            "{} is not chaincode metadata ({{\"path\",\"type\",\"label\"}})",
            path.display()
        )
    })
}

/// Replaces `path` with `data` all at once, so the peer never copies a
/// half-written file.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    crate::atomic::write(path, data, mode)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The sidecar as the CLI resolved it from `--server` / `CCLAUNCH_SERVER`,
/// with this client's TLS material for an https address (`--server-ca`,
/// `--server-cert`, `--server-key` / `CCLAUNCH_SERVER_CA`, `_CERT`, `_KEY`).
pub type Target = Option<(Address, Option<ClientTls>)>;

/// The sidecar's address, or what to do when none was given.
fn address(target: &Target) -> Result<&Address> {
    let (address, _) = target.as_ref().with_context(|| {
        format!(
            "no sidecar address: set {} (list it in the builder's propagateEnvironment in \
             core.yaml) or install the builder with `cclaunch builder install DIR --server ADDRESS`",
            client::SERVER_ENV
        )
    })?;
    Ok(address)
}

/// Connects to the sidecar.
async fn connect(target: &Target) -> Result<Remote> {
    let address = address(target)?;
    let tls = target.as_ref().and_then(|(_, tls)| tls.as_ref());
    Ok(Remote::connect(address.clone(), tls).await?)
}

/// What the sidecar said of a failed call: its status message, or the
/// whole error where it did not answer.
fn said(error: &crate::launch::Error) -> String {
    match client::answer(error) {
        Some(status) => status.message().to_string(),
        None => crate::error_chain(error),
    }
}

/// `dir` as an absolute path (the peer passes absolute ones; people may not).
fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}
