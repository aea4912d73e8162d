//! One SMTP conversation: connect, STARTTLS (or TLS from the first byte), the server's
//! certificate checked by [`Trust`] before anything else is sent, then AUTH. lettre's transport
//! would send AUTH before Pinball could look at the certificate, and its own verifier cannot pin
//! a certificate that is its own CA, so the connection is driven here with lettre's client.

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::trust::Trust;
use super::{MailError, Mailer, Security, tls_words};

/// Why one step of a conversation failed: the server's answer or the connection (as lettre
/// says it), or the server's certificate (in words).
pub(super) enum Failure {
    Smtp(lettre::transport::smtp::Error),
    Certificate(String),
}

/// What a conversation needs, settled before any connection: a settings problem stops every
/// recipient alike.
pub(super) struct Plan {
    security: Security,
    tls: Option<TlsParameters>,
    trust: Trust,
    name: ServerName<'static>,
}

impl Mailer {
    /// The protection these settings give. Credentials force TLS unless plaintext AUTH is
    /// allowed: an opportunistic connection becomes a required one.
    pub(super) fn security(&self) -> Result<Security, MailError> {
        let credentials = !self.user.is_empty();
        Ok(match self.security {
            Security::Opportunistic if credentials && !self.allow_plaintext_auth => {
                Security::Required
            }
            Security::Off if credentials && !self.allow_plaintext_auth => {
                return Err(MailError::Settings(
                    "smtp_user is set but smtp_starttls is off: the password would cross the \
                     network in the clear; use smtp_starttls: required or smtp_ssl: true, or \
                     smtp_allow_plaintext_auth: true for a trusted local relay"
                        .into(),
                ));
            }
            s => s,
        })
    }

    pub(super) fn plan(&self) -> Result<Plan, MailError> {
        let security = self.security()?;
        let ca_file = self
            .ca_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let trust = Trust::new(ca_file.as_deref())
            .map_err(|e| MailError::Settings(format!("smtp_ca_file {e}")))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| MailError::Settings(format!("smtp_host {:?}: {e}", self.host)))?;
        // The handshake checks the name and that the server holds the certificate's key; the
        // certificate itself is checked by `trust` once the handshake is done.
        let tls = match security {
            Security::Off => None,
            _ => Some(
                TlsParameters::builder(self.host.clone())
                    .dangerous_accept_invalid_certs(true)
                    .build_rustls()
                    .map_err(|e| MailError::Settings(format!("TLS: {e}")))?,
            ),
        };
        Ok(Plan {
            security,
            tls,
            trust,
            name,
        })
    }

    /// A connection ready for envelopes: encrypted as planned, the certificate trusted,
    /// authenticated when there are credentials.
    pub(super) async fn connect(&self, plan: &Plan) -> Result<AsyncSmtpConnection, Failure> {
        let hello = ClientId::default();
        let implicit = plan
            .tls
            .clone()
            .filter(|_| plan.security == Security::Implicit);
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &hello,
            implicit,
            None,
        )
        .await
        .map_err(Failure::Smtp)?;
        if let Some(tls) = &plan.tls {
            let starttls = match plan.security {
                Security::Required => true,
                Security::Opportunistic => conn.can_starttls(),
                _ => false,
            };
            if starttls {
                conn.starttls(tls.clone(), &hello)
                    .await
                    .map_err(Failure::Smtp)?;
            }
        }
        if conn.is_encrypted()
            && let Err(reason) = certificate_trusted(&conn, plan)
        {
            conn.abort().await;
            return Err(Failure::Certificate(reason));
        }
        if !self.user.is_empty() {
            let credentials = Credentials::new(self.user.clone(), self.pass.0.clone());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(Failure::Smtp)?;
        }
        Ok(conn)
    }
}

/// Whether the certificates the server showed are trusted, or why not in words.
fn certificate_trusted(conn: &AsyncSmtpConnection, plan: &Plan) -> Result<(), String> {
    let chain: Vec<CertificateDer<'static>> = conn
        .certificate_chain()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let Some((server, intermediates)) = chain.split_first() else {
        return Err("the server showed no certificate".into());
    };
    plan.trust
        .check(server, intermediates, &plan.name, UnixTime::now())
        .map_err(|e| tls_words(&format!("invalid peer certificate: {e:?}"), "smtp_ca_file"))
}
