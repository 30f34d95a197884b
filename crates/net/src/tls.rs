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
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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

/// A certificate chain with its signing key, as a resolver hands it out.
///
/// # Errors
/// The key is unsupported or does not match the chain's leaf.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, Error> {
    let signing = provider().key_provider.load_private_key(key)?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()?;
    Ok(Arc::new(ck))
}

/// Server configuration whose certificate depends on the ClientHello: the
/// portal's when the client names `portal.0` (SNI) and does not offer
/// `agent_alpn`, the site's otherwise. Agents and the support client offer
/// `agent_alpn` and pin the site's CA, so they get the site certificate
/// whatever name they dial.
///
/// # Errors
/// The protocol versions are refused by the provider.
pub fn server_config_resolving(
    site: Arc<CertifiedKey>,
    portal: Option<(String, Arc<CertifiedKey>)>,
    agent_alpn: &[u8],
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, Error> {
    let resolver = SniResolver {
        site,
        portal,
        agent_alpn: agent_alpn.to_vec(),
    };
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// See [`server_config_resolving`].
#[derive(Debug)]
struct SniResolver {
    site: Arc<CertifiedKey>,
    /// Lowercase host name without a trailing dot, and its certificate.
    portal: Option<(String, Arc<CertifiedKey>)>,
    agent_alpn: Vec<u8>,
}

impl SniResolver {
    fn pick(
        &self,
        sni: Option<&str>,
        mut alpn: impl Iterator<Item = Vec<u8>>,
    ) -> Arc<CertifiedKey> {
        let Some((host, cert)) = &self.portal else {
            return Arc::clone(&self.site);
        };
        let named = sni.is_some_and(|s| s.trim_end_matches('.').eq_ignore_ascii_case(host));
        if named && !alpn.any(|p| p == self.agent_alpn) {
            Arc::clone(cert)
        } else {
            Arc::clone(&self.site)
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let alpn: Vec<Vec<u8>> = hello
            .alpn()
            .map(|i| i.map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        Some(self.pick(hello.server_name(), alpn.into_iter()))
    }
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

/// The pinned certificate is not in the gateway's chain (or the chain's
/// leaf is not signed through it).
#[derive(Debug, thiserror::Error)]
#[error("the gateway's certificate chain does not contain the pinned certificate {0}")]
pub struct PinMismatch(pub Fingerprint);

/// What a failed TLS handshake with the gateway means for the person at the
/// keyboard, and what to do about it; `None` if `err` is not a rustls error.
///
/// rustls's own texts name its internals (`Other(OtherError(PinMismatch(…)))`,
/// `UnknownIssuer`) or link its documentation; clients report this instead.
pub fn explain(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<Error>() {
            return Some(explain_rustls(tls));
        }
        if let Some(pin) = e.downcast_ref::<PinMismatch>() {
            return Some(pin_mismatch(pin));
        }
        // tokio-rustls hands rustls errors over inside `io::Error`, whose
        // `source()` skips its payload.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(text) = explain(inner) {
                return Some(text);
            }
            // rustls's text for this one links its manual.
            if io.kind() == std::io::ErrorKind::UnexpectedEof
                && inner.to_string().contains("close_notify")
            {
                return Some("the connection was closed abruptly (no TLS close)".to_owned());
            }
        }
        cause = e.source();
    }
    None
}

fn pin_mismatch(pin: &PinMismatch) -> String {
    format!(
        "the gateway's certificate does not match the pinned fingerprint {}: someone may be \
         intercepting the connection. If the site's certificate was replaced, get the new \
         fingerprint with `jumpgate admin fingerprint` on the gateway and pass it with \
         --ca-fingerprint",
        pin.0
    )
}

fn explain_rustls(err: &Error) -> String {
    const PIN_HINT: &str = "pass --ca-fingerprint with the fingerprint `jumpgate server` \
                            printed (`jumpgate admin fingerprint` shows it again)";
    match err {
        Error::InvalidCertificate(CertificateError::Other(other)) => {
            match other.0.downcast_ref::<PinMismatch>() {
                Some(pin) => pin_mismatch(pin),
                None => format!("the gateway's certificate was refused: {}", other.0),
            }
        }
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the gateway's certificate is not trusted (it is not signed by a certificate \
             authority this system trusts): {PIN_HINT}"
        ),
        Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "the gateway's certificate has expired or is not valid yet (check this \
              machine's clock, and the certificate's dates on the gateway)"
            .to_owned(),
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the gateway's certificate is not issued for the host name in the server address: \
             use the name on the certificate, or {PIN_HINT}"
        ),
        Error::InvalidCertificate(other) => {
            format!("the gateway's certificate was refused ({other:?})")
        }
        Error::NoApplicationProtocol => "the server does not speak the Jumpgate protocol \
                                          (wrong port, or not a Jumpgate gateway)"
            .to_owned(),
        Error::AlertReceived(alert) => format!(
            "the server refused the TLS connection (alert {alert:?}): check the server \
             address and port"
        ),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the server did not answer with TLS (wrong port, or a plain-HTTP proxy in the way?)"
                .to_owned()
        }
        other => format!("the TLS handshake with the gateway failed: {other}"),
    }
}

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

impl PinnedVerifier {
    fn mismatch(&self) -> Error {
        Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            PinMismatch(self.pin),
        ))))
    }
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
            return Err(self.mismatch());
        };
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        match rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            intermediates,
            now,
            self.algs.all,
        ) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            // The pinned certificate is public: presenting it beside a leaf
            // it did not sign is no better than not presenting it.
            Err(Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            )) => Err(self.mismatch()),
            Err(e) => Err(e),
        }
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

    struct Ca {
        cert: rcgen::Certificate,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    fn ca() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Jumpgate site CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn leaf(ca: &Ca) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
    }

    /// A real handshake over an in-memory pipe: the client pins `pin`, the
    /// server presents `chain`.
    async fn handshake(
        pin: Fingerprint,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), std::io::Error> {
        let server = server_config(chain, key, &[b"http/1.1"]).unwrap();
        let client = client_config(&Trust::Pinned(pin), &[b"http/1.1"]).unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let accept = tokio::spawn(async move {
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(b).await;
        });
        let name = ServerName::try_from("localhost").unwrap();
        let r = tokio_rustls::TlsConnector::from(client)
            .connect(name, a)
            .await
            .map(drop);
        let _ = accept.await;
        r
    }

    fn is_pin_mismatch(e: &std::io::Error) -> bool {
        let Some(Error::InvalidCertificate(CertificateError::Other(o))) =
            e.get_ref().and_then(|i| i.downcast_ref::<Error>())
        else {
            return false;
        };
        o.0.downcast_ref::<PinMismatch>().is_some()
    }

    #[tokio::test]
    async fn the_pinned_ca_or_leaf_is_accepted() {
        let site = ca();
        let (cert, key) = leaf(&site);
        let chain = vec![cert.clone(), site.cert.der().clone()];
        handshake(
            Fingerprint::of(site.cert.der()),
            chain.clone(),
            key.clone_key(),
        )
        .await
        .expect("CA pin");
        handshake(Fingerprint::of(&cert), chain, key)
            .await
            .expect("leaf pin");
    }

    #[tokio::test]
    async fn another_certificate_is_refused_with_a_pin_mismatch_that_says_what_to_do() {
        let site = ca();
        let pin = Fingerprint::of(site.cert.der());
        // A man in the middle with his own CA.
        let other = ca();
        let (cert, key) = leaf(&other);
        let err = handshake(pin, vec![cert, other.cert.der().clone()], key)
            .await
            .expect_err("another CA");
        assert!(is_pin_mismatch(&err), "{err:?}");
        let text = explain(&err).expect("explained");
        assert!(text.contains(&pin.to_string()), "{text}");
        assert!(
            text.contains("does not match the pinned fingerprint"),
            "{text}"
        );
        assert!(text.contains("jumpgate admin fingerprint"), "{text}");
        assert!(
            !text.contains("OtherError") && !text.contains("docs.rs"),
            "{text}"
        );

        // ... or one who also presents the (public) site CA certificate
        // beside a leaf it did not sign.
        let (cert, key) = leaf(&other);
        let err = handshake(pin, vec![cert, site.cert.der().clone()], key)
            .await
            .expect_err("site CA beside a foreign leaf");
        assert!(is_pin_mismatch(&err), "{err:?}");

        // A self-signed leaf alone.
        let key = rcgen::KeyPair::generate().unwrap();
        let selfsigned = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let err = handshake(
            pin,
            vec![selfsigned.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .await
        .expect_err("self-signed");
        assert!(is_pin_mismatch(&err), "{err:?}");
    }

    /// A handshake against `server` naming `sni` and offering `alpn`:
    /// the leaf certificate the server presented.
    async fn presented(
        server: Arc<ServerConfig>,
        sni: &str,
        alpn: &[&[u8]],
    ) -> CertificateDer<'static> {
        // Any certificate: the test looks at which one came.
        let client = client_config(&Trust::Pinned(Fingerprint([0; 32])), alpn).unwrap();
        let mut client = Arc::unwrap_or_clone(client);
        let seen = Arc::new(std::sync::Mutex::new(None));
        client
            .dangerous()
            .set_certificate_verifier(Arc::new(Recorder(Arc::clone(&seen))));
        let (a, b) = tokio::io::duplex(64 * 1024);
        let accept = tokio::spawn(async move {
            let _ = tokio_rustls::TlsAcceptor::from(server).accept(b).await;
        });
        let name = ServerName::try_from(sni.to_owned()).unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, a)
            .await
            .unwrap();
        let _ = accept.await;
        seen.lock().unwrap().take().expect("a certificate")
    }

    #[derive(Debug)]
    struct Recorder(Arc<std::sync::Mutex<Option<CertificateDer<'static>>>>);

    impl ServerCertVerifier for Recorder {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            *self.0.lock().unwrap() = Some(end_entity.clone().into_owned());
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    #[tokio::test]
    async fn the_portal_certificate_goes_to_browsers_naming_the_portal_only() {
        let site_ca = ca();
        let (site_cert, site_key) = leaf(&site_ca);
        let site = certified_key(
            vec![site_cert.clone(), site_ca.cert.der().clone()],
            site_key,
        )
        .unwrap();
        let other = ca();
        let (portal_cert, portal_key) = leaf(&other);
        let portal = certified_key(vec![portal_cert.clone()], portal_key).unwrap();
        const AGENT: &[u8] = b"jumpgate-agent/1";
        let server = server_config_resolving(
            site,
            Some(("support.example.com".into(), portal)),
            AGENT,
            &[AGENT, b"http/1.1"],
        )
        .unwrap();
        let http: &[&[u8]] = &[b"http/1.1"];
        let cases: [(&str, &[&[u8]], &CertificateDer<'_>); 6] = [
            ("support.example.com", http, &portal_cert),
            ("SUPPORT.example.com", http, &portal_cert),
            ("support.example.com", &[], &portal_cert),
            // Agents and the support client always get the site's.
            ("support.example.com", &[AGENT], &site_cert),
            ("gw.example.com", http, &site_cert),
            ("localhost", &[AGENT], &site_cert),
        ];
        for (sni, alpn, want) in cases {
            let got = presented(Arc::clone(&server), sni, alpn).await;
            assert_eq!(&got, want, "{sni} {alpn:?}");
        }
        // An IP address (no SNI sent at all): the site's.
        let got = presented(Arc::clone(&server), "127.0.0.1", http).await;
        assert_eq!(got, site_cert);
        // A key that does not belong to the chain is refused up front.
        let (_, stray) = leaf(&other);
        assert!(certified_key(vec![site_cert], stray).is_err());
    }

    #[test]
    fn handshake_errors_are_explained_without_internals() {
        let unknown = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let text = explain(&unknown).unwrap();
        assert!(
            text.contains("not trusted") && text.contains("--ca-fingerprint"),
            "{text}"
        );
        assert!(!text.contains("UnknownIssuer"), "{text}");
        let eof = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/",
        );
        assert_eq!(
            explain(&eof).unwrap(),
            "the connection was closed abruptly (no TLS close)"
        );
        let alpn = explain(&Error::NoApplicationProtocol).unwrap();
        assert!(
            alpn.contains("does not speak the Jumpgate protocol"),
            "{alpn}"
        );
        assert!(explain(&std::io::Error::from(std::io::ErrorKind::ConnectionRefused)).is_none());
    }
}
