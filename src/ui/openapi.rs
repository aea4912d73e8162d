//! The UI's read API's OpenAPI 3 document (CONTRACT §6), generated from its handlers' types,
//! served at `GET /api/v1/openapi.json`.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pinball UI read API",
        description = "Workflows, instances, jobs, executions, logs and schedules, read from the database (CONTRACT §6). With ui_users configured, every call needs a signed-in session."
    ),
    paths(
        super::api::workflows,
        super::api::instances,
        super::api::jobs,
        super::api::executions,
        super::api::log,
        super::api::schedules,
        super::api::status,
    )
)]
pub struct UiApi;

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(UiApi::openapi()).expect("an OpenAPI document serialises")
}
