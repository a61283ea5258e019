//! The environment a Fabric peer gives its chaincode, in the peer's order,
//! and what a start request's extra entries may add to it.

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

/// Keys the launcher sets (or owns through the request, as the peer
/// address): an extra entry may not override them.
const OWNED: [&str; 4] = [
    "CORE_CHAINCODE_ID_NAME",
    "CORE_PEER_LOCALMSPID",
    "CORE_PEER_ADDRESS",
    "CORE_CHAINCODE_BUILDLEVEL",
];
const OWNED_PREFIXES: [&str; 3] = [
    "CORE_CHAINCODE_LOGGING_",
    "CORE_PEER_TLS_",
    "CORE_TLS_CLIENT_",
];

/// Keys that make the dynamic loader (glibc's and musl's) load other code:
/// `LD_PRELOAD`, `LD_AUDIT`, `LD_LIBRARY_PATH`, ... and iconv's modules.
const LOADER_PREFIX: &str = "LD_";
const LOADER: [&str; 1] = ["GCONV_PATH"];

/// Why an extra env entry is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not `KEY=value` with a name a shell would accept.
    Malformed,
    /// The launcher sets this key.
    Owned,
    /// This key steers the dynamic loader.
    Loader,
}

impl Refused {
    pub fn why(self) -> &'static str {
        match self {
            Refused::Malformed => "not KEY=value with a valid name",
            Refused::Owned => "the launcher sets it, as a peer does",
            Refused::Loader => "it makes the dynamic loader load other code",
        }
    }
}

/// Checks one extra entry; the key it sets.
pub fn check_extra(entry: &str) -> Result<&str, Refused> {
    let Some((key, _)) = entry.split_once('=') else {
        return Err(Refused::Malformed);
    };
    let mut chars = key.chars();
    let named = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if !named || entry.contains('\0') {
        return Err(Refused::Malformed);
    }
    if OWNED.contains(&key) || OWNED_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return Err(Refused::Owned);
    }
    if LOADER.contains(&key) || key.starts_with(LOADER_PREFIX) {
        return Err(Refused::Loader);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_env_entries_must_be_named_assignments() {
        for good in [
            "EXTRA=1",
            "_X=",
            "A1=b=c",
            "CORE_CHAINCODE_KEEPALIVE=1",
            "NODE_OPTIONS=--max-old-space-size=4096",
        ] {
            assert!(check_extra(good).is_ok(), "{good}");
        }
        for bad in ["EXTRA", "=1", "1A=x", "A-B=x", "A=x\0y", ""] {
            assert_eq!(check_extra(bad), Err(Refused::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn extra_env_cannot_override_the_peers_env_or_the_loader() {
        let launcher_sets = chaincode_env(
            "cc:1",
            &[
                "CORE_CHAINCODE_LOGGING_LEVEL=info".to_string(),
                "CORE_CHAINCODE_LOGGING_SHIM=warn".to_string(),
                "CORE_CHAINCODE_LOGGING_FORMAT=x".to_string(),
            ],
            true,
            "Org1MSP",
        );
        for entry in launcher_sets.iter().chain(&[
            "CORE_PEER_ADDRESS=evil:1".to_string(),
            "CORE_CHAINCODE_BUILDLEVEL=9".to_string(),
        ]) {
            assert_eq!(check_extra(entry), Err(Refused::Owned), "{entry}");
        }
        for entry in [
            "LD_PRELOAD=/tmp/x.so",
            "LD_AUDIT=/x",
            "LD_LIBRARY_PATH=/x",
            "LD_DEBUG=all",
            "GCONV_PATH=/x",
        ] {
            assert_eq!(check_extra(entry), Err(Refused::Loader), "{entry}");
        }
    }

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
