//! A certificate authority for the sandbox's servers (rcgen), so clients
//! can check them with `sslmode=verify-full` as they check RDS.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use supamigrate::cluster::ServerTls;
use supamigrate::error::{Error, ErrorKind, Result};

fn tls_error(what: &str, e: rcgen::Error) -> Error {
    Error::new(ErrorKind::Internal, format!("making {what}")).with_source(e)
}

/// A CA: its certificate and key.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<Authority> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls_error("a CA certificate", e))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().map_err(|e| tls_error("a CA key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| tls_error("a CA certificate", e))?;
        Ok(Authority { cert, key })
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (host names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Result<ServerTls> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())
            .map_err(|e| tls_error("a server certificate", e))?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let key = KeyPair::generate().map_err(|e| tls_error("a server key", e))?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| tls_error("a server certificate", e))?;
        Ok(ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
