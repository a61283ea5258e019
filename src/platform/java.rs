//! Java chaincode: built and run in `chaincode.java.runtime` (fabric-javaenv),
//! installed at /root/chaincode-java/chaincode.

/// Run from the image's working directory, /root/chaincode-java.
pub(super) const BUILD_SCRIPT: &str = "./build.sh";

pub(super) fn args(peer_address: &str) -> Vec<String> {
    vec![
        "/root/chaincode-java/start".to_string(),
        "--peerAddress".to_string(),
        peer_address.to_string(),
    ]
}
