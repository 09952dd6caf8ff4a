//! The negative-stock scan: every store's products checked against zero and
//! their thresholds through the store's actor (so a scan never races a sale),
//! raising the alerts a transaction did not (say one resolved by hand while
//! stock is still short) and resolving those whose stock is back; it also
//! sets the low- and negative-stock gauges per store.

use crate::scheduler::{Figures, JobError, Task};
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use utalk_actors::inventory::Inventory;
use utalk_storage::model::inventory::{self, StockLevel};
use utalk_storage::Db;

/// Checks every store.
pub struct StockScanTask {
    /// The store actors.
    pub inventory: Inventory,
    /// Reads.
    pub db: Db,
}

impl Task for StockScanTask {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let (inv, db) = (self.inventory.clone(), self.db.clone());
        Box::pin(async move {
            let stores = inv.stores().map_err(JobError::step)?;
            let (mut raised, mut resolved) = (0usize, 0usize);
            let mut failed = Vec::new();
            // One store that cannot be checked does not keep the others from being checked.
            for s in &stores {
                match inv.check(*s).await {
                    Ok((r, v)) => {
                        raised += r.len();
                        resolved += v.len();
                    }
                    Err(e) => failed.push(format!("store {s}: {e}")),
                }
            }
            let mut counts: HashMap<(uuid::Uuid, StockLevel), usize> = HashMap::new();
            for level in [StockLevel::Low, StockLevel::Negative] {
                for (store, _) in inventory::products_at(&db, level)? {
                    *counts.entry((store, level)).or_default() += 1;
                }
            }
            for s in &stores {
                for (level, name) in [(StockLevel::Low, "inventory_products_low"), (StockLevel::Negative, "inventory_products_negative")] {
                    let n = counts.get(&(*s, level)).copied().unwrap_or(0);
                    metrics::gauge!(name, "store" => s.to_string()).set(n as f64);
                }
            }
            if !failed.is_empty() {
                // The run is failed (and retried) so that an operator sees it; the
                // message names a few stores, not thousands.
                let named: Vec<&str> = failed.iter().take(5).map(String::as_str).collect();
                return Err(JobError::Partial(format!(
                    "{} of {} stores could not be checked: {}",
                    failed.len(),
                    stores.len(),
                    named.join("; ")
                )));
            }
            let mut f = BTreeMap::new();
            f.insert("storesChecked".into(), stores.len() as f64);
            f.insert("alertsRaised".into(), raised as f64);
            f.insert("alertsResolved".into(), resolved as f64);
            f.insert(
                "productsNegative".into(),
                counts.iter().filter(|((_, l), _)| *l == StockLevel::Negative).map(|(_, n)| *n).sum::<usize>() as f64,
            );
            Ok(f)
        })
    }
}
