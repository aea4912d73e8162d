//! The master API's OpenAPI 3 document, generated from the handlers' own request and response
//! types (utoipa), served at `GET /api/v1/openapi.json`.

use utoipa::OpenApi;

use crate::web::error::{ErrorBody, ErrorDetail};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

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
        super::api::handover::handover,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct MasterApi;

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    document_with(None)
}

/// The document with `extra` paths merged in (the routes `modes` adds beside the master's).
pub fn document_with(extra: Option<utoipa::openapi::OpenApi>) -> serde_json::Value {
    let mut api = MasterApi::openapi();
    if let Some(extra) = extra {
        api.merge(extra);
    }
    serde_json::to_value(api).expect("an OpenAPI document serialises")
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
        assert_eq!(crate::web::error::dangling_refs(&doc), Vec::<String>::new());
        assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
    }
}
