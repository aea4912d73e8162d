//! The UI (`-m ui`, issue 5, in progress): it reads the database directly (active and
//! archived tokens). Built so far: the data layer (`data`) and the JSON read API of CONTRACT §6
//! (`api`), on the status rules of `workflow::status`. The browser pages and actions are still
//! to come.

pub mod api;
pub mod data;

pub use crate::workflow::status;
