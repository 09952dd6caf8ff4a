//! Feature flags: on or off per workspace and per user, or for a stable
//! percentage of users, changed at runtime.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::Key;
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// Name (`[a-z0-9_.-]`, 1–64).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Master switch: off means off for everyone, whatever else is set.
    pub enabled: bool,
    /// Share of users (0–100) it is on for, chosen by a stable hash of flag and user.
    pub percent: u8,
    /// Per workspace: on or off whatever the percentage.
    #[serde(default)]
    pub workspaces: BTreeMap<String, bool>,
    /// Per user: on or off whatever the workspace or percentage.
    #[serde(default)]
    pub users: BTreeMap<Uuid, bool>,
    /// Incremented by every change.
    pub version: u64,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Who changed it.
    pub updated_by: String,
}

impl Record for Flag {
    const KIND: &'static str = "flag";
}

/// Who a flag is asked about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The user, if any.
    pub user: Option<Uuid>,
    /// The workspace, if any.
    pub workspace: Option<&'a str>,
}

/// Where a user falls in 0..100 for `flag`: the same every time, independent between flags.
pub fn bucket(flag: &str, user: Uuid) -> u8 {
    // FNV-1a over the flag name and the user id: stable across builds and machines.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in flag.as_bytes().iter().chain(&[0u8]).chain(user.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 100) as u8
}

impl Flag {
    /// Whether the flag is on for `who`: off when disabled; else the user's
    /// override, then the workspace's, then the percentage (a subject without
    /// a user is in only at 100%).
    pub fn is_on(&self, who: Subject<'_>) -> bool {
        if !self.enabled {
            return false;
        }
        if let Some(on) = who.user.and_then(|u| self.users.get(&u)) {
            return *on;
        }
        if let Some(on) = who.workspace.and_then(|w| self.workspaces.get(w)) {
            return *on;
        }
        match who.user {
            Some(u) => bucket(&self.name, u) < self.percent,
            None => self.percent >= 100,
        }
    }
}

/// Whether `name` is a valid flag name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Reads a flag.
pub fn get(db: &Db, name: &str) -> Result<Option<Flag>, StoreError> {
    db.get(Map::Flags, Key::new().str(name)?)
}

/// Every flag, by name.
pub fn all(db: &Db) -> Result<Vec<Flag>, StoreError> {
    Ok(db.scan::<Flag>(Map::Flags, &[], &[], usize::MAX)?.into_iter().map(|(_, f)| f).collect())
}

/// Adds the write of `f` to `batch`.
pub fn put(batch: &mut Batch, f: &Flag) -> Result<(), CodecError> {
    batch.put(Map::Flags, Key::new().str(&f.name)?, f)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(percent: u8) -> Flag {
        Flag {
            name: "new_console".into(),
            description: String::new(),
            enabled: true,
            percent,
            workspaces: BTreeMap::new(),
            users: BTreeMap::new(),
            version: 1,
            updated_at: Timestamp(0),
            updated_by: "t".into(),
        }
    }

    #[test]
    fn a_percentage_takes_that_share_of_users_and_always_the_same_ones() {
        let users: Vec<Uuid> =
            (0..10_000u128).map(|i| Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))).collect();
        let f = flag(25);
        let on = users.iter().filter(|u| f.is_on(Subject { user: Some(**u), workspace: None })).count();
        assert!((2_300..=2_700).contains(&on), "about a quarter: {on}");
        // Raising the percentage only adds users: everyone in at 25 is in at 50.
        let g = flag(50);
        assert!(users
            .iter()
            .all(|u| !f.is_on(Subject { user: Some(*u), workspace: None }) || g.is_on(Subject { user: Some(*u), workspace: None })));
        assert_eq!(bucket("a", users[0]), bucket("a", users[0]));
        assert!(!flag(0).is_on(Subject { user: Some(users[0]), workspace: None }));
        assert!(flag(100).is_on(Subject { user: Some(users[0]), workspace: None }));
    }

    #[test]
    fn overrides_go_user_then_workspace_then_percentage_and_disabled_wins() {
        let (u, v) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut f = flag(0);
        f.workspaces.insert("norte".into(), true);
        f.users.insert(u, false);
        assert!(!f.is_on(Subject { user: Some(u), workspace: Some("norte") }), "the user's own setting first");
        assert!(f.is_on(Subject { user: Some(v), workspace: Some("norte") }), "then the workspace's");
        assert!(!f.is_on(Subject { user: Some(v), workspace: Some("sur") }), "then 0%");
        assert!(!f.is_on(Subject { user: None, workspace: None }));
        f.enabled = false;
        assert!(!f.is_on(Subject { user: Some(v), workspace: Some("norte") }), "off is off");
        assert!(valid_name("bot.openai_v2") && !valid_name("Bad Name") && !valid_name(""));
    }
}
