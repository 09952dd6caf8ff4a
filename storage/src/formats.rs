//! The ways a record kind can be stored, apart from their encoding (which
//! lives with each record), so that the store can say which one it writes.

/// A way of storing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageFormat {
    /// Format 1: fields and enums named in full.
    #[default]
    Named,
    /// Format 2: short field names, enums as numbers, empty fields left out.
    Compact,
}

impl MessageFormat {
    /// Its envelope version.
    pub const fn version(self) -> u16 {
        match self {
            MessageFormat::Named => 1,
            MessageFormat::Compact => 2,
        }
    }

    /// The format of envelope version `v`.
    pub const fn of_version(v: u16) -> Option<MessageFormat> {
        match v {
            1 => Some(MessageFormat::Named),
            2 => Some(MessageFormat::Compact),
            _ => None,
        }
    }

    /// The newest format this build reads.
    pub const NEWEST: MessageFormat = MessageFormat::Compact;
}
