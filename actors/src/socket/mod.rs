//! Socket.IO: [`engineio`] and [`socketio`] packets, one [`session`] actor
//! per connection over long-polling or a websocket ([`ws_conn`]), the
//! [`hub`] every session shares, [`admission`] limits, and typed event
//! payloads ([`event_args`]) and refusals ([`event_error`]).

pub mod admission;
pub mod engineio;
pub(crate) mod event_args;
pub(crate) mod event_error;
pub mod hub;
pub mod session;
pub mod socketio;
pub mod ws_conn;
