//! Container and image names, byte-identical to the ones a Fabric peer's Docker
//! controller computes, so images a peer built are found and reused (and the reverse).

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

/// Docker's repository naming rule, as Fabric checks it.
static IMAGE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(([._-][a-z0-9]+)+)?$").expect("static regex is valid")
});

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Fabric's own wording, so operators can search for it.
    #[error("Error constructing Docker VM Name. '{0}' breaks Docker's repository naming rules")]
    BadImageName(String),
}

/// Who runs the chaincode: the peer identity parts of every name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub network_id: String,
    pub peer_id: String,
}

/// The two names of one chaincode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub container: String,
    pub image: String,
}

impl Scope {
    pub fn new(network_id: impl Into<String>, peer_id: impl Into<String>) -> Self {
        Self {
            network_id: network_id.into(),
            peer_id: peer_id.into(),
        }
    }

    /// Both names for a chaincode id (a package id in Fabric 2.x).
    pub fn names(&self, ccid: &str) -> Result<Names, Error> {
        Ok(Names {
            container: self.container_name(ccid),
            image: self.image_name(ccid)?,
        })
    }

    /// `GetVMName`: the prefixed id with every character outside `[a-zA-Z0-9-_.]`
    /// replaced by `-`.
    pub fn container_name(&self, ccid: &str) -> String {
        sanitize(&self.prefixed(ccid))
    }

    /// `GetVMNameForDocker`: `:` becomes `-` (pre-2.0 images stay findable), a
    /// sha256 of that name is appended and the result is lower-cased.
    pub fn image_name(&self, ccid: &str) -> Result<String, Error> {
        let name = self.prefixed(ccid).replace(':', "-");
        let hash = hex::encode(Sha256::digest(name.as_bytes()));
        let image = format!("{}-{}", sanitize(&name), hash).to_lowercase();
        if IMAGE_NAME.is_match(&image) {
            Ok(image)
        } else {
            Err(Error::BadImageName(image))
        }
    }

    fn prefixed(&self, ccid: &str) -> String {
        match (self.network_id.is_empty(), self.peer_id.is_empty()) {
            (false, false) => format!("{}-{}-{}", self.network_id, self.peer_id, ccid),
            (false, true) => format!("{}-{}", self.network_id, ccid),
            (true, false) => format!("{}-{}", self.peer_id, ccid),
            (true, true) => ccid.to_string(),
        }
    }
}

/// Fabric's `[^a-zA-Z0-9-_.]` → `-`, per character (so a multi-byte character
/// becomes a single `-`, as Go's regexp replaces one rune at a time).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(s: &str) -> String {
        hex::encode(Sha256::digest(s.as_bytes()))
    }

    #[test]
    fn fabric_documented_example_matches() {
        let names = Scope::new("dev", "peer0").names("mycc:abc123").unwrap();
        assert_eq!(names.container, "dev-peer0-mycc-abc123");
        assert_eq!(
            names.image,
            "dev-peer0-mycc-abc123-6019a763daab88b72cd0cb3b32d53c664c57db19534de385ffe3bed2a61c075e"
        );
    }

    /// Table of (network, peer, ccid, container, image prefix before the hash,
    /// string the hash is taken of). Mirrors the cases in Fabric's
    /// dockercontroller tests plus odd characters and upper case.
    #[test]
    fn names_follow_fabric_for_every_prefix_shape() {
        let table = [
            (
                "dev",
                "peer0",
                "mycc:1.0",
                "dev-peer0-mycc-1.0",
                "dev-peer0-mycc-1.0",
                "dev-peer0-mycc-1.0",
            ),
            (
                "",
                "peer0",
                "mycc:1.0",
                "peer0-mycc-1.0",
                "peer0-mycc-1.0",
                "peer0-mycc-1.0",
            ),
            (
                "dev",
                "",
                "mycc:1.0",
                "dev-mycc-1.0",
                "dev-mycc-1.0",
                "dev-mycc-1.0",
            ),
            ("", "", "mycc:1.0", "mycc-1.0", "mycc-1.0", "mycc-1.0"),
            // Upper case: the container keeps it, the image is lower-cased, the
            // hash is of the unlowered name.
            (
                "Dev",
                "Peer0",
                "MyCC:ABC",
                "Dev-Peer0-MyCC-ABC",
                "dev-peer0-mycc-abc",
                "Dev-Peer0-MyCC-ABC",
            ),
            // Odd characters are replaced in both; the hash is of the raw name.
            (
                "net#1",
                "peer@x",
                "cc+1:f00",
                "net-1-peer-x-cc-1-f00",
                "net-1-peer-x-cc-1-f00",
                "net#1-peer@x-cc+1-f00",
            ),
            (
                "dev",
                "peer0.org1.example.com",
                "basic_1.0:deadbeef",
                "dev-peer0.org1.example.com-basic_1.0-deadbeef",
                "dev-peer0.org1.example.com-basic_1.0-deadbeef",
                "dev-peer0.org1.example.com-basic_1.0-deadbeef",
            ),
        ];
        for (net, peer, ccid, container, image_prefix, hashed) in table {
            let names = Scope::new(net, peer)
                .names(ccid)
                .unwrap_or_else(|e| panic!("{ccid}: {e}"));
            assert_eq!(
                names.container, container,
                "container for {net}/{peer}/{ccid}"
            );
            assert_eq!(
                names.image,
                format!("{image_prefix}-{}", sha(hashed)),
                "image for {net}/{peer}/{ccid}"
            );
        }
    }

    #[test]
    fn names_that_break_docker_rules_are_refused_with_fabrics_error() {
        // A multi-byte character becomes one `-` (Go replaces runes), which
        // still leaves a `--` run: invalid, though the container name is fine.
        let scope = Scope::new("dev", "pé");
        assert_eq!(scope.container_name("cc:1"), "dev-p--cc-1");
        for (net, peer, ccid) in [
            ("dev", "pé", "cc:1"),
            ("-dev", "peer0", "cc:1"),
            ("dev", "peer0", "_cc:1"),
            ("dev", "peer0", "a..b:1"),
        ] {
            let msg = Scope::new(net, peer)
                .image_name(ccid)
                .unwrap_err()
                .to_string();
            assert!(
                msg.starts_with("Error constructing Docker VM Name. '"),
                "{msg}"
            );
            assert!(
                msg.ends_with("' breaks Docker's repository naming rules"),
                "{msg}"
            );
        }
        let err = Scope::new("dev", "peer0").image_name("a..b:1").unwrap_err();
        assert_eq!(
            err,
            Error::BadImageName(format!("dev-peer0-a..b-1-{}", sha("dev-peer0-a..b-1")))
        );
    }
}
