//! Socket.IO: [`engineio`] and [`socketio`] packets, one [`session`] actor
//! per connection over long-polling or a websocket ([`ws_conn`] on the
//! bytes of [`ws_transport`]), the
//! [`hub`] every session shares, [`admission`] limits, and typed event
//! payloads ([`event_args`]) and refusals ([`event_error`]).

pub mod admission;
pub(crate) mod engineio;
pub(crate) mod event_args;
pub(crate) mod event_error;
pub(crate) mod hub;
pub mod session;
pub(crate) mod session_store;
pub(crate) mod socketio;
pub mod ws_conn;
pub mod ws_transport;
