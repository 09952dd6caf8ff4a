//! The bot that answers first ([`answers`]), from [`knowledge`] rules or an
//! [`openai`]-compatible model, and the [`assigner`] that hands escalated
//! conversations to people online.

pub mod answers;
pub mod assigner;
pub mod knowledge;
pub mod openai;
