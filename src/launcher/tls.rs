//! The TLS files a peer uploads into its chaincode container before start.

use std::fmt;
use std::io::{self, Write};

use base64::Engine as _;

use super::env::{
    CLIENT_CERT_FILE, CLIENT_CERT_PATH, CLIENT_KEY_FILE, CLIENT_KEY_PATH, ROOT_CERT_FILE,
};

/// A chaincode's mutual-TLS client identity and the peer's root certificate,
/// all PEM. The key never appears in logs or debug output.
#[derive(Clone)]
pub struct TlsMaterial {
    pub client_cert: Vec<u8>,
    pub client_key: Vec<u8>,
    pub root_cert: Vec<u8>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field(
                "client_cert",
                &format_args!("{} bytes", self.client_cert.len()),
            )
            .field("client_key", &"<redacted>")
            .field("root_cert", &format_args!("{} bytes", self.root_cert.len()))
            .finish()
    }
}

impl TlsMaterial {
    /// Checks that each part is PEM, naming the part that is not.
    pub fn validate(&self) -> Result<(), String> {
        for (name, pem) in [
            ("client certificate", &self.client_cert),
            ("client key", &self.client_key),
            ("root certificate", &self.root_cert),
        ] {
            let text = std::str::from_utf8(pem).map_err(|_| format!("{name} is not PEM text"))?;
            if !text.trim_start().starts_with("-----BEGIN ") || !text.contains("-----END ") {
                return Err(format!("{name} is not PEM (no -----BEGIN/-----END block)"));
            }
        }
        Ok(())
    }

    /// Fabric's upload: one gzip'd tar extracted at `/`, mode 0100644, where
    /// client.key and client.crt hold the base64 of the PEM (the Node shim
    /// decodes exactly these two) and the other three hold raw PEM.
    pub fn tarball(&self) -> io::Result<Vec<u8>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let files: [(&str, Vec<u8>); 5] = [
            (CLIENT_KEY_PATH, b64.encode(&self.client_key).into_bytes()),
            (CLIENT_CERT_PATH, b64.encode(&self.client_cert).into_bytes()),
            (CLIENT_KEY_FILE, self.client_key.clone()),
            (CLIENT_CERT_FILE, self.client_cert.clone()),
            (ROOT_CERT_FILE, self.root_cert.clone()),
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
        let bytes = tls.tarball().unwrap();
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
            tls.validate().unwrap_err(),
            "root certificate is not PEM (no -----BEGIN/-----END block)"
        );
    }
}
