//! The UI (`-m ui`, issue 5, in progress): it reads the database directly (active and
//! archived tokens). Built so far: the status rules (`status`), the data layer (`data`) and the
//! JSON read API of CONTRACT §6 (`api`). The browser pages and actions are still to come.

pub mod api;
pub mod data;
pub mod status;
