//! The conversation core: one actor per active conversation deciding its
//! order ([`actor`], re-exported here), the [`commands`] it takes in one
//! envelope, what its writes are made of ([`batches`]), its errors
//! ([`error`]), the rules it applies ([`lifecycle`]), who is asking
//! ([`identity`]), the [`registry`] that starts and retires the actors,
//! and [`forward`], which carries a command to the node that owns the
//! conversation.

mod actor;
pub mod announce;
pub(crate) mod batches;
pub(crate) mod commands;
pub(crate) mod error;
pub(crate) mod forward;
pub(crate) mod identity;
pub mod lifecycle;
pub(crate) mod registry;

pub use actor::*;
pub use batches::{apply_change, channel_name, count_opened};
pub use commands::*;
