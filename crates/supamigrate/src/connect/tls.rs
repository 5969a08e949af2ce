//! libpq `sslmode` semantics on top of rustls.
//!
//! | sslmode | encryption | chain checked | host name checked |
//! |---|---|---|---|
//! | disable | no | – | – |
//! | allow, prefer | if the server offers it | no | no |
//! | require | yes | no | no |
//! | verify-ca | yes | against `sslrootcert` | no |
//! | verify-full | yes | against `sslrootcert` | yes |

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::conninfo::{ConnInfo, SslMode};
use crate::error::{Error, ErrorKind, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `info`'s sslmode, or `None` for `disable`.
pub fn client_config(info: &ConnInfo) -> Result<Option<ClientConfig>> {
    let builder = || {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(ErrorKind::Tls, "setting up TLS").with_source(e))
    };
    let config = match info.sslmode {
        SslMode::Disable => return Ok(None),
        SslMode::Allow | SslMode::Prefer | SslMode::Require => builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoChainCheck(provider())))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = load_roots(info)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| {
                    Error::new(ErrorKind::Tls, "setting up certificate verification").with_source(e)
                })?;
            let verifier: Arc<dyn ServerCertVerifier> = if info.sslmode == SslMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            };
            builder()?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(Some(config))
}

fn load_roots(info: &ConnInfo) -> Result<RootCertStore> {
    let path = info.sslrootcert.as_ref().ok_or_else(|| {
        Error::invalid_input(format!(
            "sslmode={} needs sslrootcert",
            info.sslmode.as_str()
        ))
        .with_hint("add sslrootcert=/path/to/ca.pem (for RDS: the global-bundle.pem AWS publishes)")
    })?;
    let bytes = std::fs::read(path).map_err(|e| {
        Error::io(format!("reading sslrootcert {}", path.display()), e)
            .with_hint("point sslrootcert at a readable PEM file of CA certificates")
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| {
            Error::invalid_input(format!("sslrootcert {} is not valid PEM", path.display()))
                .with_source(e)
                .with_hint("use the PEM bundle as downloaded (for RDS: global-bundle.pem)")
        })?;
        roots.add(cert).map_err(|e| {
            Error::invalid_input(format!(
                "sslrootcert {} holds a certificate rustls cannot use",
                path.display()
            ))
            .with_source(e)
        })?;
    }
    if roots.is_empty() {
        return Err(Error::invalid_input(format!(
            "sslrootcert {} contains no certificate",
            path.display()
        ))
        .with_hint("use the PEM bundle as downloaded (for RDS: global-bundle.pem)"));
    }
    Ok(roots)
}

/// `verify-ca`: the chain must verify; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require`: encrypted, but any certificate is accepted (as in libpq).
/// Handshake signatures are still checked, so the peer holds the key it shows.
#[derive(Debug)]
struct NoChainCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoChainCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// If `err`'s causes include a rustls certificate error, a message and hint for it.
pub(crate) fn explain_tls_failure(
    err: &(dyn std::error::Error + 'static),
    info: &ConnInfo,
) -> Option<(String, String)> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            let ca = info
                .sslrootcert
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Some(match tls {
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                ) => (
                    format!(
                        "TLS refused: the server certificate is not valid for host {:?} (sslmode=verify-full)",
                        info.host
                    ),
                    "connect with the host name the certificate was issued for (for RDS: the instance endpoint), or use sslmode=verify-ca".into(),
                ),
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                | rustls::Error::InvalidCertificate(CertificateError::BadSignature) => (
                    format!("TLS refused: the server certificate was not issued by a CA in sslrootcert {ca}"),
                    "point sslrootcert at the CA bundle of this server (for RDS: global-bundle.pem from AWS)".into(),
                ),
                rustls::Error::InvalidCertificate(CertificateError::Expired) => (
                    "TLS refused: the server certificate has expired".into(),
                    "renew the server certificate, or check this machine's clock".into(),
                ),
                other => (
                    format!("TLS handshake failed: {other}"),
                    "check sslmode and sslrootcert in the connection string".into(),
                ),
            });
        }
        cur = e.source();
    }
    None
}
