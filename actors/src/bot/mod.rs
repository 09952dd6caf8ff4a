//! The bot that answers first ([`answers`]), from [`knowledge`] rules or an
//! [`openai`]-compatible model, and the [`assigner`] that hands escalated
//! conversations to people online; outside business hours the bot says
//! when people are back ([`closed`]) and assignments wait for the opening.

pub mod answers;
pub mod assigner;
pub mod closed;
pub mod knowledge;
pub mod openai;
