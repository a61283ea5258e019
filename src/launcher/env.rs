//! The environment a Fabric peer gives its chaincode, in the peer's order.

/// Where the TLS files land in the container, and the env vars naming them.
pub const TLS_DIR: &str = "/etc/hyperledger/fabric";
pub const CLIENT_KEY_PATH: &str = "/etc/hyperledger/fabric/client.key";
pub const CLIENT_CERT_PATH: &str = "/etc/hyperledger/fabric/client.crt";
pub const CLIENT_KEY_FILE: &str = "/etc/hyperledger/fabric/client_pem.key";
pub const CLIENT_CERT_FILE: &str = "/etc/hyperledger/fabric/client_pem.crt";
pub const ROOT_CERT_FILE: &str = "/etc/hyperledger/fabric/peer.crt";

/// `GetEnv`: the package id, the logging env, the TLS switches, the MSP id.
pub fn chaincode_env(package_id: &str, logging: &[String], tls: bool, msp_id: &str) -> Vec<String> {
    let mut env = vec![format!("CORE_CHAINCODE_ID_NAME={package_id}")];
    env.extend(logging.iter().cloned());
    if tls {
        env.extend([
            "CORE_PEER_TLS_ENABLED=true".to_string(),
            format!("CORE_TLS_CLIENT_KEY_PATH={CLIENT_KEY_PATH}"),
            format!("CORE_TLS_CLIENT_CERT_PATH={CLIENT_CERT_PATH}"),
            format!("CORE_TLS_CLIENT_KEY_FILE={CLIENT_KEY_FILE}"),
            format!("CORE_TLS_CLIENT_CERT_FILE={CLIENT_CERT_FILE}"),
            format!("CORE_PEER_TLS_ROOTCERT_FILE={ROOT_CERT_FILE}"),
        ]);
    } else {
        env.push("CORE_PEER_TLS_ENABLED=false".to_string());
    }
    env.push(format!("CORE_PEER_LOCALMSPID={msp_id}"));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_follows_the_peer_with_and_without_tls() {
        let logging = ["CORE_CHAINCODE_LOGGING_LEVEL=info".to_string()];
        assert_eq!(
            chaincode_env("cc:1", &logging, false, "Org1MSP"),
            [
                "CORE_CHAINCODE_ID_NAME=cc:1",
                "CORE_CHAINCODE_LOGGING_LEVEL=info",
                "CORE_PEER_TLS_ENABLED=false",
                "CORE_PEER_LOCALMSPID=Org1MSP"
            ]
        );
        assert_eq!(
            chaincode_env("cc:1", &[], true, "Org1MSP"),
            [
                "CORE_CHAINCODE_ID_NAME=cc:1",
                "CORE_PEER_TLS_ENABLED=true",
                "CORE_TLS_CLIENT_KEY_PATH=/etc/hyperledger/fabric/client.key",
                "CORE_TLS_CLIENT_CERT_PATH=/etc/hyperledger/fabric/client.crt",
                "CORE_TLS_CLIENT_KEY_FILE=/etc/hyperledger/fabric/client_pem.key",
                "CORE_TLS_CLIENT_CERT_FILE=/etc/hyperledger/fabric/client_pem.crt",
                "CORE_PEER_TLS_ROOTCERT_FILE=/etc/hyperledger/fabric/peer.crt",
                "CORE_PEER_LOCALMSPID=Org1MSP"
            ]
        );
    }
}
