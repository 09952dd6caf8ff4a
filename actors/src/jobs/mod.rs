//! The skeleton of durable background work: a supervised [`worker`] loop
//! that runs passes on the leading node, the [`signal`] that wakes it when a
//! job is durable, [`retry`] backoff, and the [`pace`] of work beside the load.

pub mod pace;
pub mod retry;
pub mod signal;
pub mod worker;
