//! The master API's OpenAPI 3 document, generated from the handlers' own request and response
//! types (utoipa), served at `GET /api/v1/openapi.json`.

use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Every error answer: `{"error": {"code", "message"}}` (CONTRACT §2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `VERSION_CONFLICT`, `NOT_FOUND`, `INPUT_ERROR`, `UNAVAILABLE`, `UNAUTHORIZED` or
    /// `FORBIDDEN`.
    pub code: String,
    pub message: String,
}

/// Adds the bearer-token scheme every call may need (with `api_tokens` configured).
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pinball master",
        description = "The token master's JSON API (CONTRACT §2): version-checked, all-or-nothing writes, prefix queries, claims with leases, archiving, the audit log."
    ),
    paths(
        super::api::modify,
        super::api::query,
        super::api::query_and_own,
        super::api::group,
        super::api::archive,
        super::api::audit,
        super::api::health,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct MasterApi;

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(MasterApi::openapi()).expect("an OpenAPI document serialises")
}
