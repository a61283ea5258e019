//! The TLS files a peer uploads into its chaincode container before start.

use std::io::{self, Write};

use base64::Engine as _;

use super::env::{
    CLIENT_CERT_FILE, CLIENT_CERT_PATH, CLIENT_KEY_FILE, CLIENT_KEY_PATH, ROOT_CERT_FILE,
};

pub use crate::launch::TlsMaterial;

/// Fabric's upload: one gzip'd tar extracted at `/`, mode 0100644, where
/// client.key and client.crt hold the base64 of the PEM (the Node shim
/// decodes exactly these two) and the other three hold raw PEM.
pub fn tarball(tls: &TlsMaterial) -> io::Result<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let files: [(&str, Vec<u8>); 5] = [
        (CLIENT_KEY_PATH, b64.encode(&tls.client_key).into_bytes()),
        (CLIENT_CERT_PATH, b64.encode(&tls.client_cert).into_bytes()),
        (CLIENT_KEY_FILE, tls.client_key.clone()),
        (CLIENT_CERT_FILE, tls.client_cert.clone()),
        (ROOT_CERT_FILE, tls.root_cert.clone()),
    ];
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in files {
        let mut header = tar::Header::new_ustar();
        // Absolute names, as the peer writes them; the tar crate's
        // set_path refuses those, so the name field is filled directly.
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o100644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, data.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn material() -> TlsMaterial {
        TlsMaterial {
            client_cert: b"-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n".to_vec(),
            client_key: b"-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n"
                .to_vec(),
            root_cert: b"-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n".to_vec(),
        }
    }

    #[test]
    fn tarball_has_the_five_files_two_in_base64() {
        let tls = material();
        let bytes = tarball(&tls).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = String::from_utf8(entry.path_bytes().to_vec()).unwrap();
            assert_eq!(entry.header().mode().unwrap(), 0o100644, "{name}");
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.push((name, data));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(
            seen,
            [
                (
                    "/etc/hyperledger/fabric/client.key".to_string(),
                    b64.encode(&tls.client_key).into_bytes()
                ),
                (
                    "/etc/hyperledger/fabric/client.crt".to_string(),
                    b64.encode(&tls.client_cert).into_bytes()
                ),
                (
                    "/etc/hyperledger/fabric/client_pem.key".to_string(),
                    tls.client_key.clone()
                ),
                (
                    "/etc/hyperledger/fabric/client_pem.crt".to_string(),
                    tls.client_cert.clone()
                ),
                (
                    "/etc/hyperledger/fabric/peer.crt".to_string(),
                    tls.root_cert.clone()
                ),
            ]
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", material());
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
