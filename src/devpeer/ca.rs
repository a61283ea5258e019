//! Dev TLS material, made the way a peer makes it: one CA signs the devpeer's
//! server certificate and a client certificate per chaincode launch.

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

use crate::launch::TlsMaterial;

#[derive(Debug, thiserror::Error)]
#[error("cannot make dev TLS material: {0}")]
pub struct Error(#[from] rcgen::Error);

pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server identity: certificate and key, PEM.
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl DevCa {
    pub fn new() -> Result<DevCa, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "cclaunch devpeer CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key)?;
        Ok(DevCa { cert, key })
    }

    pub fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// The devpeer's server certificate, valid for the loopback names the
    /// chaincode dials (`localhost`, `127.0.0.1`, `::1`) plus `hosts`.
    pub fn server(&self, hosts: &[String]) -> Result<Identity, Error> {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        names.extend(hosts.iter().cloned());
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "cclaunch devpeer");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A chaincode's client identity, with the CA as the root it trusts.
    pub fn client(&self, name: &str) -> Result<TlsMaterial, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let identity = self.sign(params)?;
        Ok(TlsMaterial {
            client_cert: identity.cert_pem.into_bytes(),
            client_key: identity.key_pem.into_bytes(),
            root_cert: self.ca_pem().into_bytes(),
        })
    }

    fn sign(&self, params: CertificateParams) -> Result<Identity, Error> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
