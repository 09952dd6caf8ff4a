//! Feature flags as code reads them: `state.flags.is_on("name", subject)`,
//! from memory, changed at runtime by `PUT /api/v1/flags/{name}`.

use std::collections::HashMap;
use std::sync::RwLock;
use utalk_storage::model::flag::{self, Flag, Subject};
use utalk_storage::{Db, StoreError};

pub use utalk_storage::model::flag::valid_name;

/// The flags, kept in memory and in the store.
pub struct Flags {
    cache: RwLock<HashMap<String, Flag>>,
}

impl Flags {
    /// Loads every stored flag.
    pub fn load(db: &Db) -> Result<Flags, StoreError> {
        let cache = flag::all(db)?.into_iter().map(|f| (f.name.clone(), f)).collect();
        Ok(Flags { cache: RwLock::new(cache) })
    }

    /// Reads every stored flag again (another node of a cluster changed one).
    pub fn reload(&self, db: &Db) -> Result<(), StoreError> {
        let fresh = flag::all(db)?.into_iter().map(|f| (f.name.clone(), f)).collect();
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Whether `name` is on for `who`; a flag nobody defined is off.
    pub fn is_on(&self, name: &str, who: Subject<'_>) -> bool {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).get(name).is_some_and(|f| f.is_on(who))
    }

    /// One flag.
    pub fn get(&self, name: &str) -> Option<Flag> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Every flag, by name.
    pub fn list(&self) -> Vec<Flag> {
        let mut all: Vec<Flag> = self.cache.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Takes a flag's new version once it is stored.
    pub fn stored(&self, f: Flag) {
        self.cache.write().unwrap_or_else(|p| p.into_inner()).insert(f.name.clone(), f);
    }
}
