//! The UI's read API's OpenAPI 3 document (CONTRACT §6), generated from its handlers' types,
//! served at `GET /api/v1/openapi.json`.

use utoipa::OpenApi;

use crate::web::error::ErrorBody;

/// The errors every read may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents answers; built by `UiError`, not from these variants
pub enum Errors {
    /// INPUT_ERROR: a name or parameter is invalid
    #[response(status = 400)]
    Input(ErrorBody),
    /// UNAUTHORIZED: sign in first (with ui_users configured)
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// NOT_FOUND
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// the Host is not one of the UI's names
    #[response(status = 421)]
    Misdirected(ErrorBody),
    /// UNAVAILABLE: the database cannot be read
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pinball UI read API",
        description = "Workflows, instances, jobs, executions, logs and schedules, read from the database (CONTRACT §6). With ui_users configured, every call needs a signed-in session or one of api_tokens (Authorization: Bearer); actions need an operator."
    ),
    paths(
        super::api::workflows,
        super::api::instances,
        super::api::jobs,
        super::api::executions,
        super::api::log,
        super::api::schedules,
        super::api::backfills,
        super::api::pools,
        super::api::status,
        super::actions::json_command,
    ),
    components(schemas(ErrorBody, crate::web::error::ErrorDetail))
)]
pub struct UiApi;

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(UiApi::openapi()).expect("an OpenAPI document serialises")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_read_api_s_document_resolves_every_reference() {
        let doc = super::document();
        assert!(doc["paths"].get("/api/v1/workflows").is_some());
        assert!(doc["paths"].get("/api/v1/actions/{command}").is_some());
        assert_eq!(crate::web::error::dangling_refs(&doc), Vec::<String>::new());
    }
}
