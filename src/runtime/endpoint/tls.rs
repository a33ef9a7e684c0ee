//! TLS to a TCP engine with rustls and its ring provider (no OpenSSL: the binary stays
//! static): the server verified against the given CA (or the system's), a client
//! certificate when there is one, and no verification only when the user asked for that.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::Tls;

/// Where the system keeps its CA bundle, after `$SSL_CERT_FILE`: Debian's and Alpine's,
/// Fedora's, macOS's.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The client configuration for `tls`; the error says which file is wrong and why.
pub fn client_config(tls: &Tls) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("setting up TLS: {e}"))?;
    let builder = if tls.verify {
        builder.with_root_certificates(roots(tls.ca.as_deref())?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(
                provider.signature_verification_algorithms,
            )))
    };
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("reading the TLS key {}: {}", key.display(), pem_reason(e)))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate {}: {e}", cert.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// ring's provider with the AES-GCM suites and the X25519 and P-256 groups only: TLS 1.3
/// makes TLS_AES_128_GCM_SHA256 and P-256 mandatory for every server (RFC 8446, 9.1),
/// and what is left out (ChaCha20-Poly1305's assembly, P-384) is about 53 KB of the
/// static binary. Built from parts, as `default_provider()` would keep every suite in.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: SIGNATURES,
        secure_random: &Ring,
        key_provider: &Ring,
    }
}

/// The signatures checked, by webpki with ring: on certificates, every kind CAs use; in
/// the handshake, the schemes TLS 1.3 allows (RFC 8446, 4.2.3).
const SIGNATURES: WebPkiSupportedAlgorithms = {
    use webpki::ring as alg;
    WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
        ],
        mapping: &[
            (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256],
            ),
            (
                SignatureScheme::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384],
            ),
            (SignatureScheme::ED25519, &[alg::ED25519]),
            (
                SignatureScheme::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
        ],
    }
};

/// Randomness and private keys from ring, as the default provider has them.
#[derive(Debug)]
struct Ring;

impl rustls::crypto::SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

impl rustls::crypto::KeyProvider for Ring {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_supported_type(&key)
    }
}

/// The name the server's certificate must carry: the host (a name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} cannot be checked against a certificate: {e}"))
}

/// The CAs the server's certificate must chain to: the given file, else the system's.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let file = match ca {
        Some(ca) => ca.to_path_buf(),
        None => system_bundle().ok_or_else(|| {
            "no CA to verify the engine with: set DOCKER_CERT_PATH to a directory holding \
             ca.pem"
                .to_string()
        })?,
    };
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates(&file)?);
    if added == 0 {
        return Err(format!("{} holds no usable CA certificate", file.display()));
    }
    Ok(roots)
}

fn system_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// The certificates of PEM file `path`; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |e: String| format!("reading the TLS certificate {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(pem_reason(e)))?;
    if certs.is_empty() {
        return Err(what("no certificate in it".into()));
    }
    Ok(certs)
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => crate::io_reason::io_reason(&io),
        Error::NoItemsFound => "no PEM item of that kind in it".into(),
        other => format!("{other:?}"),
    }
}

/// Accepts any server certificate (`DOCKER_TLS=1` without `DOCKER_TLS_VERIFY`), while
/// still checking that the handshake is signed by it.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named() {
        let tls = Tls {
            ca: Some("/nonexistent/ca.pem".into()),
            cert: None,
            key: None,
            verify: true,
        };
        let e = client_config(&tls).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("moat-tls-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let tls = Tls {
            ca: Some(path.clone()),
            cert: None,
            key: None,
            verify: true,
        };
        let e = client_config(&tls).unwrap_err();
        assert!(e.contains("no"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unverified_tls_needs_no_files() {
        let tls = Tls {
            ca: None,
            cert: None,
            key: None,
            verify: false,
        };
        assert!(client_config(&tls).is_ok());
    }

    #[test]
    fn hosts_become_server_names() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("docker.internal").is_ok());
    }
}
