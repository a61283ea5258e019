//! `bin/release BLD RELEASE`: what the peer reads after the build.
//!
//! - CouchDB index definitions: BLD/META-INF/statedb → RELEASE/statedb
//!   (`statedb/couchdb/indexes/*.json`, and per collection), for any type.
//! - ccaas: RELEASE/chaincode/server/connection.json, so the peer dials the
//!   chaincode and never calls `run`.

use std::path::Path;

use anyhow::{Context, Result};

use super::{ccaas, source, Record};

pub fn release(bld: &Path, release: &Path) -> Result<i32> {
    let record = Record::read(bld)?;
    let label = &record.label;
    let statedb = bld.join("META-INF").join("statedb");
    if statedb.is_dir() {
        let files = source::copy_tree(&statedb, &release.join("statedb"))
            .with_context(|| format!("chaincode {label}: cannot release its statedb indexes"))?;
        eprintln!("cclaunch: released {files} statedb file(s) of chaincode {label}");
    }
    if !record.is_ccaas() {
        return Ok(0);
    }
    let from = bld.join(ccaas::CONNECTION_FILE);
    let text = std::fs::read(&from)
        .with_context(|| format!("chaincode {label}: cannot read {}", from.display()))?;
    let connection: ccaas::Connection = serde_json::from_slice(&text)
        .map_err(|e| crate::excerpt::json_error(&e))
        .with_context(|| format!("chaincode {label}: {} is not valid", from.display()))?;
    connection
        .validate()
        .with_context(|| format!("chaincode {label}: {}", from.display()))?;
    let dir = release.join("chaincode").join("server");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("chaincode {label}: cannot create {}", dir.display()))?;
    super::write_atomic(&dir.join(ccaas::CONNECTION_FILE), &text, 0o600)
        .with_context(|| format!("chaincode {label}"))?;
    eprintln!(
        "cclaunch: chaincode {label} is a service at {}; the peer dials it",
        connection.address
    );
    Ok(0)
}
