//! Which server certificates a notice may go to: one that chains to the system's roots or to a
//! certificate named in a `ca_file` (`smtp_ca_file`, a webhook's `ca_file`), or one named in the
//! `ca_file` exactly as the server presents it (pinning), even when it is its own CA: `openssl
//! req -x509` makes such certificates by default and many internal relays use them. A pinned
//! certificate's validity dates and names are still checked, and the server still proves it
//! holds the certificate's key in the handshake.
//!
//! Both channels use one [`Trust`]: webhooks through [`Trust::client_config`] (rustls calls it
//! during the handshake), SMTP through [`Trust::check`] on the certificates the server showed,
//! after STARTTLS and before anything else (AUTH, the envelope) is sent.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The system's roots, the `ca_file`'s certificates as roots, and the same certificates pinned.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("roots", &self.roots.len())
            .field("pinned", &self.pinned.len())
            .finish()
    }
}

impl Trust {
    /// The system's roots plus the certificates of `ca_file` (an unreadable file, or one with no
    /// certificate, is an error naming the file).
    pub fn new(ca_file: Option<&str>) -> Result<Trust, String> {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let mut pinned = Vec::new();
        if let Some(path) = ca_file {
            pinned = super::webhook::read_pem(path).map_err(|e| format!("{path}: {e}"))?;
            // A certificate webpki cannot take as a root (its own CA or not) is still pinned.
            roots.add_parsable_certificates(pinned.iter().cloned());
        }
        Ok(Trust {
            roots: Arc::new(roots),
            pinned,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// Whether the server showing `end_entity` (then `intermediates`) as `name` at `now` is
    /// trusted: the certificate chains to a root, or it is a pinned one; in date and issued for
    /// `name` either way.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        let algorithms = self.provider.signature_verification_algorithms.all;
        match verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            algorithms,
        ) {
            Ok(()) => {}
            // webpki checks a server certificate's validity dates before its basic
            // constraints, so a certificate refused only for being a CA is in date (the
            // `a_pinned_certificate_still_needs_the_right_name_and_dates` test holds this).
            Err(e) if is_ca_as_server(&e) && self.is_pinned(end_entity) => {}
            Err(e) => return Err(e),
        }
        verify_server_name(&cert, name)
    }

    fn is_pinned(&self, cert: &CertificateDer<'_>) -> bool {
        self.pinned.iter().any(|p| p.as_ref() == cert.as_ref())
    }

    /// A rustls client configuration (ring, TLS 1.2 and 1.3) that trusts what [`Trust::check`]
    /// trusts.
    pub fn client_config(self) -> Result<rustls::ClientConfig, String> {
        let provider = self.provider.clone();
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier(self)))
            .with_no_client_auth())
    }
}

/// Whether `e` refuses a CA certificate (`CA:TRUE`) as a server's own.
pub fn is_ca_as_server(e: &rustls::Error) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(o))
        if format!("{o:?}").contains("CaUsedAsEndEntity"))
}

/// [`Trust`] as rustls's verifier: the certificate by [`Trust::check`], the handshake's
/// signatures as rustls checks them.
#[derive(Debug)]
struct Verifier(Trust);

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.check(end_entity, intermediates, name, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A certificate for `localhost` made as `openssl req -x509` makes it (`CA:TRUE`), valid
    /// for two days from now; its PEM file and DER.
    fn openssl_cert(dir: &std::path::Path, file: &str) -> (String, CertificateDer<'static>) {
        let (cert, key) = (dir.join(file), dir.join(format!("{file}.key")));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success());
        let path = cert.to_str().unwrap().to_owned();
        let der = super::super::webhook::read_pem(&path).unwrap().remove(0);
        (path, der)
    }

    fn localhost() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }

    #[test]
    fn a_pinned_self_signed_ca_certificate_is_trusted_and_an_unnamed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (path, cert) = openssl_cert(dir.path(), "relay.pem");
        let (_, other) = openssl_cert(dir.path(), "other.pem");
        let now = UnixTime::now();
        let pinned = Trust::new(Some(&path)).unwrap();
        pinned.check(&cert, &[], &localhost(), now).unwrap();
        // Another certificate with the same name and the same kind is not the pinned one.
        let e = pinned.check(&other, &[], &localhost(), now).unwrap_err();
        assert!(is_ca_as_server(&e), "{e}");
        let e = Trust::new(None)
            .unwrap()
            .check(&cert, &[], &localhost(), now)
            .unwrap_err();
        assert!(is_ca_as_server(&e), "{e}");
    }

    #[test]
    fn a_pinned_certificate_still_needs_the_right_name_and_dates() {
        let dir = tempfile::tempdir().unwrap();
        let (path, cert) = openssl_cert(dir.path(), "relay.pem");
        let trust = Trust::new(Some(&path)).unwrap();
        let other_name = ServerName::try_from("mail.example.com").unwrap();
        let e = trust
            .check(&cert, &[], &other_name, UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{e}"
        );
        let week = 7 * 86_400;
        let in_a_week =
            UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs() + week));
        let e = trust
            .check(&cert, &[], &localhost(), in_a_week)
            .unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{e}"
        );
        let a_week_ago =
            UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs() - week));
        let e = trust
            .check(&cert, &[], &localhost(), a_week_ago)
            .unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })
            ),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let e = Trust::new(Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
