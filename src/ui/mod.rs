//! The UI (issue 5, in progress). So far: the status rules every page and the JSON read API
//! will show (`status`). The pages, the JSON API and the actions are not built yet; `-m ui`
//! says so.

pub mod status;
