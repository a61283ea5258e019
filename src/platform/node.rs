//! Node chaincode: built and run in `chaincode.node.runtime` (fabric-nodeenv),
//! installed at /usr/local/src.

/// Fabric's build script (tab-indented, as in the peer's source).
pub(super) const BUILD_SCRIPT: &str = "
set -e
if [ -x /chaincode/build.sh ]; then
\t/chaincode/build.sh
else
\tcp -R /chaincode/input/src/. /chaincode/output && cd /chaincode/output && npm install --production
fi
";

/// Fabric's start script: images from Fabric v1.4 and earlier have
/// /chaincode/start.sh, newer ones `npm start`.
const START_SCRIPT: &str = "
set -e
if [ -x /chaincode/start.sh ]; then
\t/chaincode/start.sh --peer.address {addr}
else
\tcd /usr/local/src
\tnpm start -- --peer.address {addr}
fi
";

pub(super) fn args(peer_address: &str) -> Vec<String> {
    vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        START_SCRIPT.replace("{addr}", peer_address),
    ]
}
