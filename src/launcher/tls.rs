//! The TLS files a peer uploads into its chaincode container before start.

use base64::Engine as _;

use super::env::{
    CLIENT_CERT_FILE, CLIENT_CERT_PATH, CLIENT_KEY_FILE, CLIENT_KEY_PATH, ROOT_CERT_FILE,
};
use crate::runtime::File;

pub use crate::launch::TlsMaterial;

/// Fabric's five files, mode 0644, where client.key and client.crt hold the
/// base64 of the PEM (the Node shim decodes exactly these two) and the other
/// three hold raw PEM. The engine puts them in place before start (on
/// Docker: one gzip'd tar extracted at `/`, as the peer uploads it).
pub fn files(tls: &TlsMaterial) -> Vec<File> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let file = |path: &str, data: Vec<u8>, secret: bool| File {
        path: path.to_string(),
        mode: 0o644,
        data,
        secret,
    };
    vec![
        file(
            CLIENT_KEY_PATH,
            b64.encode(&tls.client_key).into_bytes(),
            true,
        ),
        file(
            CLIENT_CERT_PATH,
            b64.encode(&tls.client_cert).into_bytes(),
            false,
        ),
        file(CLIENT_KEY_FILE, tls.client_key.clone(), true),
        file(CLIENT_CERT_FILE, tls.client_cert.clone(), false),
        file(ROOT_CERT_FILE, tls.root_cert.clone(), false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> TlsMaterial {
        TlsMaterial {
            client_cert: b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n".to_vec(),
            client_key: b"-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n"
                .to_vec(),
            root_cert: b"-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n".to_vec(),
        }
    }

    #[test]
    fn five_files_two_in_base64_the_keys_secret() {
        let tls = material();
        let seen: Vec<(String, u32, Vec<u8>, bool)> = files(&tls)
            .into_iter()
            .map(|f| (f.path, f.mode, f.data, f.secret))
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD;
        let dir = "/etc/hyperledger/fabric";
        assert_eq!(
            seen,
            [
                (
                    format!("{dir}/client.key"),
                    0o644,
                    b64.encode(&tls.client_key).into_bytes(),
                    true
                ),
                (
                    format!("{dir}/client.crt"),
                    0o644,
                    b64.encode(&tls.client_cert).into_bytes(),
                    false
                ),
                (
                    format!("{dir}/client_pem.key"),
                    0o644,
                    tls.client_key.clone(),
                    true
                ),
                (
                    format!("{dir}/client_pem.crt"),
                    0o644,
                    tls.client_cert.clone(),
                    false
                ),
                (
                    format!("{dir}/peer.crt"),
                    0o644,
                    tls.root_cert.clone(),
                    false
                ),
            ]
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?} {:?}", material(), files(&material()));
        assert!(
            !shown.contains("SECRET") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn non_pem_is_named() {
        let mut tls = material();
        tls.root_cert = b"garbage".to_vec();
        assert_eq!(
            tls.validate().unwrap_err().to_string(),
            "root certificate is not PEM (no -----BEGIN/-----END block)"
        );
    }
}
