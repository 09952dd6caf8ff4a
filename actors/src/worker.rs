//! The supervised actor that runs a background worker's loop (delivery,
//! media downloads): if the loop ever ends, the actor stops and its
//! supervisor starts it again, from the worker's durable jobs.

use actix::prelude::*;
use std::future::Future;
use std::sync::Arc;

/// A background loop over durable jobs.
pub trait Worker: Send + Sync + 'static {
    /// Name for logs.
    const NAME: &'static str;
    /// Works until the process stops; returning means something went wrong.
    fn run(self: Arc<Self>) -> impl Future<Output = ()> + 'static;
}

/// The actor around a [`Worker`].
pub struct WorkerActor<W: Worker> {
    inner: Arc<W>,
}

impl<W: Worker> WorkerActor<W> {
    /// Starts the worker under a supervisor.
    pub fn start(inner: Arc<W>) -> Addr<WorkerActor<W>> {
        actix::Supervisor::start(move |_| WorkerActor { inner })
    }
}

impl<W: Worker> Actor for WorkerActor<W> {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let inner = self.inner.clone();
        ctx.spawn(actix::fut::wrap_future(inner.run()).map(|_, _act: &mut Self, ctx: &mut Context<Self>| ctx.stop()));
    }
}

impl<W: Worker> actix::Supervised for WorkerActor<W> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(worker = W::NAME, "worker restarting");
    }
}
