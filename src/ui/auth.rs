//! Who uses the UI, and what every answer carries (CONTRACT §7.1). Every request passes
//! [`guard`]: its `Host` must be one of the UI's names (no DNS rebinding), a POST must come
//! from a page of this site, and with `ui_users` configured it must carry a session, or it is
//! sent to `/login` (the JSON read API answers 401). Sessions live in this process's memory
//! (tower-sessions), behind a signed `HttpOnly`, `SameSite=Strict` cookie that expires after
//! `ui_session_minutes` without use; signing in gives a new session id, signing out deletes it.
//! Passwords are checked against argon2id hashes on a pool of their own with short queues, and
//! repeated failures from one address or for one user back off (`signin`), so a crowd of
//! sign-ins can neither exhaust the machine nor guess on. Every answer says how a browser must treat it: a content
//! security policy that runs only this UI's own script, no framing, no sniffing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use askama::Template;
use axum::extract::{ConnectInfo, Extension, Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::{Key, SameSite};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

mod login;

use super::sessions::BoundedStore;
pub use login::router;

use super::Ui;
use super::signin::{Refusal, Throttle, Verifier};
use crate::config::access::hash_password;
use crate::config::{Config, Role, UiUser};
use crate::web::auth::{host_allowed, host_names, same_origin};

const USER_KEY: &str = "user";

/// The user of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiCaller {
    /// The signed-in user; `None` on a UI without `ui_users`.
    pub user: Option<String>,
    pub role: Role,
    /// The session's anti-forgery token (`None` without a session: the UI's own serves).
    pub csrf: Option<String>,
}

impl UiCaller {
    /// Who the audit log names.
    pub fn actor(&self) -> String {
        self.user
            .clone()
            .unwrap_or_else(|| "anonymous (UI without ui_users)".into())
    }

    pub fn may_act(&self) -> bool {
        self.role >= Role::Operator
    }
}

tokio::task_local! {
    static CALLER: UiCaller;
}

/// The user of the request being answered (a viewer outside any request).
pub fn current() -> UiCaller {
    CALLER.try_with(Clone::clone).unwrap_or(UiCaller {
        user: None,
        role: Role::Viewer,
        csrf: None,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionUser {
    username: String,
    role: Role,
    /// The anti-forgery token of this session's pages and actions.
    csrf: String,
}

/// The UI's users and what checking them needs.
pub struct Users {
    by_name: HashMap<String, (String, Role)>,
    /// Checks the passwords, a bounded number at a time.
    verifier: Verifier,
    /// Failed sign-ins lately, by address and by user.
    throttle: Throttle,
    /// Checked when the name is unknown, so the answer takes as long either way.
    decoy: String,
}

impl Users {
    pub fn new(users: &[UiUser]) -> Users {
        Users {
            by_name: users
                .iter()
                .map(|u| (u.username.clone(), (u.password_hash.0.clone(), u.role)))
                .collect(),
            verifier: Verifier::new(),
            throttle: Throttle::default(),
            decoy: hash_password("not a password of anybody's").unwrap_or_default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The role of `username` if `password` is theirs; refused unchecked while `from` or the
    /// user is locked out, or while the check queue is full.
    async fn check(
        &self,
        from: IpAddr,
        username: &str,
        password: &str,
    ) -> Result<Option<Role>, Refusal> {
        let (hash, role) = match self.by_name.get(username) {
            Some((h, r)) => (h.as_str(), Some(*r)),
            None => (self.decoy.as_str(), None),
        };
        let user = role.map(|_| username);
        if let Some(wait) = self.throttle.locked(from, user, Instant::now()) {
            return Err(Refusal::Locked(wait));
        }
        let answer = self.verifier.submit(password, hash, role.is_some())?;
        let matches = answer.await.unwrap_or(false);
        match role.filter(|_| matches) {
            Some(role) => {
                self.throttle.succeeded(username);
                Ok(Some(role))
            }
            None => {
                let failure = self.throttle.failed(from, user, Instant::now());
                if let Some(lock) = failure.locked_for {
                    tracing::warn!(address = %from, user = ?username, lock_sec = lock.as_secs(), "ui sign-in locked out after repeated failures");
                }
                Ok(None)
            }
        }
    }
}

/// The UI's host names beyond IP addresses and `localhost`: `ui_host` and `ui_bind`.
pub fn ui_host_names(c: &Config) -> Vec<String> {
    host_names([c.ui_host.as_deref().unwrap_or(""), c.ui_bind.as_str()])
}

/// The session layer: a fresh signing key per process (sessions end when the UI restarts).
pub fn sessions(
    c: &Config,
    store: BoundedStore,
) -> SessionManagerLayer<BoundedStore, tower_sessions::service::SignedCookie> {
    let minutes = i64::try_from(c.ui_session_minutes).unwrap_or(i64::MAX / 60);
    SessionManagerLayer::new(store)
        .with_name("pinball_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(c.ui_cookie_secure)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::minutes(minutes),
        ))
        .with_signed(Key::generate())
}

/// The headers every answer carries.
fn protect(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn refused(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, Json(body)).into_response()
}

/// Every request: a `Host` of this UI, a POST from this site, a session when users are
/// configured; the answer gets [`protect`]'s headers.
pub async fn guard(State(ui): State<Ui>, session: Session, req: Request, next: Next) -> Response {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let mut response = match admit(&ui, &session, req.headers(), &method, &uri).await {
        Ok(caller) => {
            if caller.user.is_some() || ui.users.is_empty() {
                crate::web::conns::trust(req.extensions());
            }
            CALLER.scope(caller, next.run(req)).await
        }
        Err(response) => response,
    };
    protect(&mut response);
    response
}

async fn admit(
    ui: &Ui,
    session: &Session,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
) -> Result<UiCaller, Response> {
    if !host_allowed(headers, &ui.host_names) {
        tracing::warn!(host = ?headers.get(header::HOST), "ui refused a request for another host name");
        return Err(refused(
            StatusCode::MISDIRECTED_REQUEST,
            "FORBIDDEN",
            "this UI does not answer to that host name; use its address or ui_host",
        ));
    }
    if method == Method::POST && !same_origin(headers) {
        tracing::warn!(path = %uri.path(), "ui refused a POST from another site");
        return Err(refused(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this action did not come from a Pinball page; reload the page and try again",
        ));
    }
    if uri.path().starts_with("/api/") && headers.contains_key(header::AUTHORIZATION) {
        return token_caller(ui, headers).map_err(|(status, m)| {
            let code = match status {
                StatusCode::FORBIDDEN => "FORBIDDEN",
                _ => "UNAUTHORIZED",
            };
            refused(status, code, &m)
        });
    }
    if ui.users.is_empty() {
        return Ok(UiCaller {
            user: None,
            role: Role::Operator,
            csrf: None,
        });
    }
    if let Ok(Some(u)) = session.get::<SessionUser>(USER_KEY).await {
        return Ok(UiCaller {
            user: Some(u.username),
            role: u.role,
            csrf: Some(u.csrf),
        });
    }
    let path = uri.path();
    if path == "/login" || path == "/favicon.ico" || path.starts_with("/static/") {
        return Ok(UiCaller {
            user: None,
            role: Role::Viewer,
            csrf: None,
        });
    }
    if path.starts_with("/api/") {
        return Err(refused(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "sign in first: POST /login with username and password",
        ));
    }
    let next = uri.path_and_query().map_or("/", |p| p.as_str());
    let to = format!(
        "/login?next={}",
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    );
    Err(Redirect::to(&to).into_response())
}

/// The caller of a JSON API request that presents `Authorization: Bearer <token>`: one of
/// `api_tokens`, with its role (a script has no session and needs no page token).
/// A refused token: unauthorized (or forbidden, a trigger's), for the reason returned.
fn token_caller(ui: &Ui, headers: &HeaderMap) -> Result<UiCaller, (StatusCode, String)> {
    if ui.tokens.is_open() {
        return Err((
            StatusCode::UNAUTHORIZED,
            "this UI has no api_tokens to check a token against: sign in, or configure api_tokens"
                .into(),
        ));
    }
    match ui.tokens.authenticate(headers) {
        Ok(caller) if caller.role < Role::Viewer => Err((
            StatusCode::FORBIDDEN,
            "a trigger token starts runs at the master (POST /api/v1/workflows/{wf}/runs) and reads nothing".into(),
        )),
        Ok(caller) => Ok(UiCaller {
            user: Some(format!("{} (api token)", caller.name)),
            role: caller.role,
            csrf: None,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "ui refused an API token");
            Err((StatusCode::UNAUTHORIZED, e.to_string()))
        }
    }
}

/// Where to go after signing in: a path of this site, never another site.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.len() <= 2048
                && !n.bytes().any(|b| b.is_ascii_control()) =>
        {
            n
        }
        _ => "/workflows/",
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
