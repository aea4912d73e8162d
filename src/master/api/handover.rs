//! `POST /api/v1/master/handover` (operator): the leader gives its lease to a standby and
//! stands by itself, in the same process (CONTRACT §7.3; `pinball master handover`).

use axum::Json;
use axum::extract::{Extension, State};
use serde::{Deserialize, Serialize};

use super::super::service::Master;
use crate::token::AuditRequest;
use crate::web::auth::Caller;
use crate::web::error::{ApiError, ApiJson, Errors};

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverRequest {
    /// Who asks, for the audit log (the command line sends its operating-system user);
    /// the token's name when absent.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub actor: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct HandoverResponse {
    /// The master's name (`master_name`).
    pub master: String,
    /// The epoch of the lease given up: the next leader's is greater.
    pub epoch: i64,
    /// The standbys that may take it, as this master last read them.
    pub standbys: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/master/handover",
    request_body = HandoverRequest,
    responses(
        (status = 200, description = "the master stops serving and gives its lease up; a standby takes it over and this master stands by", body = HandoverResponse),
        Errors,
    ),
    tag = "master"
)]
pub(in crate::master) async fn handover(
    State(m): State<Master>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<HandoverRequest>,
) -> Result<Json<HandoverResponse>, ApiError> {
    let (epoch, standbys) = m.may_hand_over()?;
    let entry = AuditRequest {
        actor: req.actor.unwrap_or_else(|| caller.name.to_string()),
        command: "master handover".into(),
        workflow: None,
        instance: None,
        jobs: Vec::new(),
        ok: true,
        result: format!("gave up epoch {epoch}; standbys: {}", standbys.join(", ")),
    };
    // Recorded before the lease goes: the audit is committed under this master's epoch.
    m.audit_keyed(entry, &caller.name, None).await?;
    let master = m.name().to_owned();
    tracing::info!(master = %master, epoch, via = %caller.name, standbys = %standbys.join(", "), "asked to hand the lease over: this master stops serving and stands by");
    m.hand_over();
    Ok(Json(HandoverResponse {
        master,
        epoch,
        standbys,
    }))
}
