//! Certificates as ACME handles them: reading what an issued chain says
//! about itself, turning PEM into a key rustls can present, and making the
//! TLS-ALPN-01 challenge certificate (RFC 8737).

use std::sync::Arc;

use jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use schemas::acme::internal::CertMeta;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::tls::provider;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The PEM did not hold a certificate chain and a key.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// The leaf certificate did not parse.
    #[error("malformed certificate: {0}")]
    X509(String),
    /// rustls refused the pair (e.g. the key does not match).
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// Making a challenge certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The DER certificates of a PEM chain, leaf first.
pub fn chain_der(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Pem(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::Pem("no certificate".into()));
    }
    Ok(chain)
}

/// What the leaf of `chain_pem` says: serial, names, validity, issuer.
pub fn meta(chain_pem: &str) -> Result<CertMeta, CertError> {
    let chain = chain_der(chain_pem)?;
    let leaf = chain.first().ok_or_else(|| CertError::Pem("no certificate".into()))?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| CertError::X509(e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    let ts = |t: i64| Timestamp::from_second(t).map_err(|e| CertError::X509(e.to_string()));
    Ok(CertMeta {
        serial: hex::encode(cert.raw_serial()),
        names,
        not_before: ts(cert.validity().not_before.timestamp())?,
        not_after: ts(cert.validity().not_after.timestamp())?,
        issuer: cert.issuer().to_string(),
    })
}

/// Checks that `path` holds at least one PEM certificate (`--acme-ca-root`),
/// so a wrong path is refused at start rather than at the first order.
pub fn check_root(path: &std::path::Path) -> Result<(), CertError> {
    let text = std::fs::read_to_string(path).map_err(|e| CertError::Pem(format!("{}: {e}", path.display())))?;
    chain_der(&text).map(drop)
}

/// A key rustls can present, from a PEM chain and PEM private key.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = chain_der(chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| CertError::Pem(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider())?))
}

/// A key for a TLS-ALPN-01 challenge certificate. Unlike
/// [`certified_key`] it does not parse the certificate with webpki, which
/// refuses the critical acmeIdentifier extension RFC 8737 requires.
pub fn challenge_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = chain_der(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| CertError::Pem(e.to_string()))?;
    let signer = provider().key_provider.load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// The TLS-ALPN-01 certificate for `domain`: self-signed, the domain as its
/// only name, and the critical acmeIdentifier extension holding the SHA-256
/// of the key authorization. Returns (certificate PEM, key PEM).
pub fn alpn_challenge(domain: &str, key_authorization_sha256: &[u8]) -> Result<(String, String), CertError> {
    // rcgen asserts this length; check it here instead of panicking.
    if key_authorization_sha256.len() != 32 {
        return Err(CertError::X509("the key authorization digest is not 32 bytes".into()));
    }
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(key_authorization_sha256));
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn alpn_certificate_round_trips_and_names_the_domain() {
        let (cert, key) = alpn_challenge("vpn.example", &[7u8; 32]).unwrap();
        let meta = meta(&cert).unwrap();
        assert_eq!(meta.names, vec!["vpn.example".to_owned()]);
        assert!(meta.not_after > meta.not_before);
        challenge_key(&cert, &key).unwrap();
    }
}
