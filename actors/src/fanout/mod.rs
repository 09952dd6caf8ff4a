//! Fan-out of events: the [`broker`] hands committed events to subscribed
//! sessions; [`shared_broker`] carries the ones that are not kept to other
//! nodes, and [`staff_presence`] shares who is online.

pub mod broker;
pub mod shared_broker;
pub(crate) mod staff_presence;
