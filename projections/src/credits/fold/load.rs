//! Reading the lots, holds and balances a batch's events refer to, one statement per table.

use super::{Balance, Fold, Hold, Lot, generation, lot_ids};
use crate::batch::{for_connection, numbered, select_keys, text_keys};
use crate::schema::Tables;
use domain::credits::CreditsEvent;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

impl Fold {
    /// Reads the rows the batch's events refer to.
    pub(super) async fn load(
        conn: &mut AnyConnection,
        tables: &Tables,
        ledger: &[(&str, i64, &CreditsEvent)],
    ) -> Result<Self, sqlx::Error> {
        let mut fold = Self::default();
        let mut lot_keys: Vec<Uuid> = ledger.iter().flat_map(|(_, _, e)| lot_ids(e)).collect();
        lot_keys.sort_unstable();
        lot_keys.dedup();
        let keys = text_keys(&lot_keys);
        let lots = tables.get("credit_lots");
        let select = format!(
            "SELECT lot_id, account_id, grant_key, source, priority, amount, remaining, \
             expires_at, granted_at, expired FROM {lots} WHERE"
        );
        for row in select_keys(conn, &select, &["lot_id"], &keys).await? {
            let id: String = row.try_get("lot_id")?;
            let id = Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(e.into()))?;
            fold.lots.insert(
                id,
                Lot {
                    account: row.try_get("account_id")?,
                    grant_key: row.try_get("grant_key")?,
                    source: row.try_get("source")?,
                    priority: row.try_get("priority")?,
                    amount: row.try_get("amount")?,
                    remaining: row.try_get("remaining")?,
                    expires_at: row.try_get("expires_at")?,
                    granted_at: row.try_get("granted_at")?,
                    expired: row.try_get::<i64, _>("expired")? != 0,
                    dirty: false,
                },
            );
        }

        // Holds: two `IN` lists (accounts, generations) answered from the primary key; the
        // few pairs they match that the batch did not ask for are left out here.
        let mut hold_keys: Vec<(&str, &str)> = ledger
            .iter()
            .filter_map(|(account, _, e)| Some((*account, generation(e)?)))
            .collect();
        hold_keys.sort_unstable();
        hold_keys.dedup();
        let wanted: std::collections::HashSet<(&str, &str)> = hold_keys.iter().copied().collect();
        let mut hold_accounts: Vec<&str> = hold_keys.iter().map(|(a, _)| *a).collect();
        hold_accounts.dedup();
        let mut generations: Vec<&str> = hold_keys.iter().map(|(_, g)| *g).collect();
        generations.sort_unstable();
        generations.dedup();
        if !hold_keys.is_empty() {
            let holds = tables.get("credit_holds");
            let sql = for_connection(
                conn,
                format!(
                    "SELECT account_id, generation_id, feature, amount, held_at, expires_at \
                     FROM {holds} WHERE account_id IN ({}) AND generation_id IN ({})",
                    numbered(1, hold_accounts.len()),
                    numbered(hold_accounts.len() + 1, generations.len())
                ),
            );
            // Not kept prepared: its shape changes with the batch (see `batch`).
            let mut query = sqlx::query(&sql).persistent(false);
            for value in hold_accounts.iter().chain(&generations) {
                query = query.bind(*value);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let key: (String, String) =
                    (row.try_get("account_id")?, row.try_get("generation_id")?);
                if !wanted.contains(&(key.0.as_str(), key.1.as_str())) {
                    continue;
                }
                let hold = Hold {
                    feature: row.try_get("feature")?,
                    amount: row.try_get("amount")?,
                    held_at: row.try_get("held_at")?,
                    expires_at: row.try_get("expires_at")?,
                };
                fold.holds.entry(key).or_default().row = Some(hold);
            }
        }

        // The accounts of the events, and those owning the lots they touch.
        let mut accounts: Vec<String> = ledger.iter().map(|(a, _, _)| (*a).to_owned()).collect();
        accounts.extend(fold.lots.values().map(|lot| lot.account.clone()));
        accounts.sort_unstable();
        accounts.dedup();
        let keys = text_keys(&accounts);
        let select = format!(
            "SELECT account_id, balance, held, updated_at FROM {} WHERE",
            tables.get("credit_balances")
        );
        for row in select_keys(conn, &select, &["account_id"], &keys).await? {
            fold.balances.insert(
                row.try_get("account_id")?,
                Balance {
                    balance: row.try_get("balance")?,
                    held: row.try_get("held")?,
                    updated_at: row.try_get("updated_at")?,
                    changed: false,
                },
            );
        }
        Ok(fold)
    }
}
