//! The utalk server, in rooms by concern: the composition root ([`app`]
//! wires everything, [`cli`] is the command line, [`config`] the settings,
//! [`state`] the parts handlers extract), [`http`] (routes, auth, errors,
//! request ids), [`services`] (the writes routes call, feature flags), [`ops`] (backups of the cluster log, exports, reports,
//! secrets) and [`observe`] (metrics, logs, traces). Arrows point one way:
//! http → services → the actors; no two rooms import each other
//! (`tests/api/layout.rs`).

pub mod app;
pub mod cli;
pub(crate) mod config;
pub mod http;
pub(crate) mod observe;
pub(crate) mod ops;
pub(crate) mod services;
pub(crate) mod state;
