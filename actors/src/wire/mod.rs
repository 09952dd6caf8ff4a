//! What travels between the nodes of a cluster, as its own types: log
//! entries ([`log`]), forwarded conversation requests and their answers
//! ([`forward`]), events that are not kept ([`ephemeral`]), the staff
//! each node has online ([`presence`]) and dropped Socket.IO sessions
//! ([`session`]). The domain types convert to and
//! from these where they live, so this module names nothing but storage
//! records and the cluster's error, and a change to a command, an event or
//! an API view does not change what nodes send each other unnoticed.

pub(crate) mod ephemeral;
pub(crate) mod forward;
pub(crate) mod log;
pub(crate) mod presence;
pub(crate) mod session;
