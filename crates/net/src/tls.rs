//! TLS configuration shared by the gateway and its clients.
//!
//! - Only TLS 1.3 and 1.2 are ever enabled (rustls implements nothing older).
//! - Clients trust the gateway either by a pinned SHA-256 fingerprint of a
//!   certificate in its chain (the site CA printed by `jumpgate server`, or a
//!   site certificate itself) or by the operating system's roots (for sites
//!   that use a certificate from a public CA).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// TLS versions the product speaks, newest first.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one crypto provider of the build.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// SHA-256 fingerprint of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Error parsing a fingerprint.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid SHA-256 fingerprint: expected 64 hex digits (colons and a `sha256:` prefix are allowed)"
)]
pub struct FingerprintParseError;

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .unwrap_or(s);
        let hex: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
        if hex.len() != 64 {
            return Err(FingerprintParseError);
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let hi = (pair[0] as char)
                .to_digit(16)
                .ok_or(FingerprintParseError)?;
            let lo = (pair[1] as char)
                .to_digit(16)
                .ok_or(FingerprintParseError)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(Self(out))
    }
}

/// How a client decides to trust the gateway.
#[derive(Clone, Debug)]
pub enum Trust {
    /// A certificate with this fingerprint must be in the presented chain; if
    /// it is not the leaf, the leaf must be signed through it.
    Pinned(Fingerprint),
    /// The operating system's root certificates, with host name checks.
    SystemRoots,
}

/// Server configuration: TLS 1.2/1.3, the given chain and ALPN protocols.
///
/// # Errors
/// The key does not match the certificate or is unsupported.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, Error> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Client configuration for talking to a gateway.
///
/// # Errors
/// The system root store could not be loaded.
pub fn client_config(trust: &Trust, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(VERSIONS)?;
    let mut cfg = match trust {
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pin: *pin,
                algs: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::SystemRoots => {
            let mut roots = RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(Error::General(
                    "no system root certificates found; pass --ca-fingerprint".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The pinned certificate is not in the gateway's chain.
#[derive(Debug, thiserror::Error)]
#[error("the gateway's certificate chain does not contain the pinned certificate {0}")]
pub struct PinMismatch(pub Fingerprint);

/// Trusts exactly the pinned certificate (see [`Trust::Pinned`]).
///
/// Host names are not checked under a pin: the pinned certificate is the
/// site's own, so the name adds nothing, and agents often reach a gateway by
/// an address the certificate was not issued for (an IP, a NAT name).
#[derive(Debug)]
struct PinnedVerifier {
    pin: Fingerprint,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if Fingerprint::of(end_entity) == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(anchor) = intermediates
            .iter()
            .find(|c| Fingerprint::of(c) == self.pin)
        else {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch(self.pin))),
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_common_notations() {
        let fp = Fingerprint::of(b"cert");
        let plain = fp.to_string();
        assert_eq!(plain.len(), 64);
        let colons: String = plain
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        for s in [plain.clone(), colons, format!("sha256:{plain}")] {
            assert_eq!(s.parse::<Fingerprint>().unwrap(), fp, "{s}");
        }
        assert!("abc".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }
}
