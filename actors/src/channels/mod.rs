//! Channels to the outside: Twilio's WhatsApp ([`twilio`], the outbox's
//! [`delivery`], webhook signatures in [`twilio_signature`]), media
//! ([`media_fetch`] downloads, [`media_store`] files and signed URLs), and
//! inbound WhatsApp: Twilio's webhook form ([`twilio_form`]) to a stored message ([`whatsapp`]).

pub mod delivery;
pub mod media_fetch;
pub mod media_store;
pub mod twilio;
pub mod twilio_form;
pub(crate) mod twilio_signature;
pub mod whatsapp;
