//! `/login` and `/logout`: the sign-in form, the password check (throttled, off the async
//! threads), and a new session on success.

use super::*;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    error: String,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

async fn login_page(State(ui): State<Ui>, Query(q): Query<LoginQuery>) -> Response {
    if ui.users.is_empty() {
        return Redirect::to("/workflows/").into_response();
    }
    let page = LoginPage {
        next: local_path(q.next.as_deref()).to_owned(),
        error: String::new(),
    };
    crate::ui::pages::render(&page).into_response()
}

async fn login(
    State(ui): State<Ui>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    session: Session,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = local_path(f.next.as_deref()).to_owned();
    let username = f.username.trim();
    if username.len() > 64 || f.password.len() > 1024 {
        return login_failed(next, "the username or password is too long");
    }
    let from = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip());
    let failure = |reason: &'static str| {
        metrics::counter!(crate::metrics::UI_LOGIN_FAILURES, "reason" => reason).increment(1);
    };
    match ui.users.check(from, username, &f.password).await {
        Ok(Some(role)) => {
            let user = SessionUser {
                username: username.to_owned(),
                role,
                csrf: crate::ui::random_hex(),
            };
            let stored = match session.cycle_id().await {
                Ok(()) => session.insert(USER_KEY, &user).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                tracing::error!(error = %e, "ui cannot store a session");
                return login_failed(next, "the session could not be stored; try again");
            }
            tracing::info!(user = ?username, role = %role, "ui user signed in");
            Redirect::to(&next).into_response()
        }
        Ok(None) => {
            failure("wrong_password");
            tracing::warn!(user = ?username, address = %from, "ui sign-in failed");
            login_failed(next, "wrong username or password")
        }
        Err(Refusal::Locked(wait)) => {
            failure("locked");
            let secs = wait.as_secs() + 1;
            let message = format!("too many failed sign-ins; try again in {secs} seconds");
            too_many(next, &message, secs)
        }
        Err(Refusal::Busy) => {
            failure("busy");
            too_many(next, "too many sign-ins at once; try again in a moment", 1)
        }
    }
}

/// 429 with the sign-in page, its message and when to come back.
fn too_many(next: String, message: &str, retry_after_sec: u64) -> Response {
    let page = LoginPage {
        next,
        error: message.into(),
    };
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after_sec.to_string())],
        crate::ui::pages::render(&page),
    )
        .into_response()
}

fn login_failed(next: String, error: &str) -> Response {
    let page = LoginPage {
        next,
        error: error.into(),
    };
    (StatusCode::UNAUTHORIZED, crate::ui::pages::render(&page)).into_response()
}

async fn logout(session: Session) -> Response {
    let who = current().user;
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "ui cannot end a session");
    }
    tracing::info!(user = ?who, "ui user signed out");
    Redirect::to("/login").into_response()
}

pub fn router(ui: Ui) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .with_state(ui)
}
