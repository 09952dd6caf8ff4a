//! The API's views of the stored records: what REST responses and socket
//! events show. They start with the same fields as the records, but they are
//! their own types, so renaming an API field cannot change the disk format (the
//! records in `utalk_storage` know nothing of HTTP) and a new disk field is not
//! shown until a view says so. Views convert from records with `From`.

mod alert;
mod backup;
mod bot;
mod conversation;
mod flag;
mod inventory;
mod job_run;
mod kpi;
mod media;
mod message;
mod outbox;

pub use alert::*;
pub use backup::*;
pub use bot::*;
pub use conversation::*;
pub use flag::*;
pub use inventory::*;
pub use job_run::*;
pub use kpi::*;
pub use media::*;
pub use message::*;
pub use outbox::*;
