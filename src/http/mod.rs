//! HTTP: the [`routes`], [`auth`], the JSON [`error`]s they answer with,
//! [`request_id`]s and request logs, the client's address behind trusted
//! proxies ([`client_addr`]), browsers on other origins ([`cors`]), per-caller [`rate_limit`]s and API versions and deprecations
//! ([`api_version`]).

pub mod api_version;
pub mod auth;
pub mod client_addr;
pub mod cors;
pub mod error;
pub mod json;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub(crate) mod server;
pub(crate) mod ws_upgrade;
