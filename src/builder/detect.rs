//! `bin/detect SRC META`: does this builder claim the package? Exit 0 = yes.
//! Decided from META/metadata.json's type alone; the sidecar is not asked.

use std::path::Path;

use crate::config::Config;
use crate::excerpt::quote;

/// The exit code for the peer; the reason for a "no" goes to stderr.
pub fn detect(config: &Config, _src: &Path, meta: &Path) -> i32 {
    let claimed = &config.cclaunch.builder.types;
    let metadata = match super::read_metadata(meta) {
        Ok(metadata) => metadata,
        Err(e) => {
            eprintln!("cclaunch builder detect: {e:#}");
            return 1;
        }
    };
    if claimed
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&metadata.kind))
    {
        eprintln!(
            "cclaunch builder detect: chaincode {} of type {} is claimed",
            metadata.label,
            quote(&metadata.kind)
        );
        0
    } else {
        eprintln!(
            "cclaunch builder detect: chaincode {} has type {}, not one of cclaunch.builder.types ({})",
            metadata.label,
            quote(&metadata.kind),
            claimed.join(", ")
        );
        1
    }
}
