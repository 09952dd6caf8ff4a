//! Event webhooks: integrators subscribe to what happens (messages,
//! conversations, ratings, stock alerts) and receive it as signed JSON
//! POSTs.
//!
//! - [`event`]: the event names.
//! - [`tap`]: writers queue deliveries in the batch of the change they report.
//! - [`payloads`]: what each event's `data` holds.
//! - [`sender`]: the worker that sends them in order, with retries.
//! - [`signature`]: the `X-Utalk-Signature` header.
//! - [`guard`]: which receivers are allowed.

pub mod event;
pub mod guard;
pub mod payloads;
pub mod sender;
pub mod signature;
pub mod tap;

pub use event::EventKind;
pub use sender::{SenderConfig, WebhookSender};
pub use tap::WebhookTap;
