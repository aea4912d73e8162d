//! The HTTP kit the master's API and the UI share, below both: the bounded server loop
//! (`http`), fair connections (`conns`), who is calling and the host/origin guard (`auth`),
//! errors and JSON bodies (`error`), and the probes every listener answers (`probes`). It knows
//! nothing of tokens' names, workflows, or either server's routes.

pub mod auth;
pub mod conns;
pub mod error;
pub mod http;
pub mod probes;
