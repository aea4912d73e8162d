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

/// The errors every master call may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents answers; built by `ApiError`, not from these variants
pub enum Errors {
    /// INPUT_ERROR: the request is malformed or breaks a rule
    #[response(status = 400)]
    Input(ErrorBody),
    /// UNAUTHORIZED: no API token, or one this master does not know
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// FORBIDDEN: the token's role does not allow this, or the request came from another site or host name
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// the body is not application/json
    #[response(status = 415)]
    MediaType(ErrorBody),
    /// UNAVAILABLE: the database cannot be reached; nothing was changed
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The errors of the writes that name versions.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    /// NOT_FOUND: a versioned update names a token that does not exist
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// VERSION_CONFLICT: a token's version is not the stored one
    #[response(status = 409)]
    Conflict(ErrorBody),
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
        description = "The token master's JSON API (CONTRACT §2): version-checked, all-or-nothing writes, prefix queries, claims with leases, archiving, the audit log, job logs sent by the workers."
    ),
    paths(
        super::api::modify,
        super::api::query,
        super::api::query_and_own,
        super::api::group,
        super::api::archive,
        super::api::audit,
        super::api::logs,
        super::api::health,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct MasterApi;

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(MasterApi::openapi()).expect("an OpenAPI document serialises")
}

/// Every `$ref` of `doc` that names no schema of its components.
pub fn dangling_refs(doc: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(doc, &mut refs);
    refs.into_iter()
        .filter(|r| {
            r.strip_prefix("#/components/schemas/")
                .is_none_or(|name| doc["components"]["schemas"].get(name).is_none())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_s_document_names_every_endpoint_and_resolves_every_reference() {
        let doc = document();
        for path in [
            "modify",
            "query",
            "query_and_own",
            "group",
            "archive",
            "audit",
            "logs",
            "health",
        ] {
            assert!(
                doc["paths"].get(format!("/api/v1/{path}")).is_some(),
                "{path}"
            );
        }
        assert_eq!(dangling_refs(&doc), Vec::<String>::new());
        assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
    }
}
