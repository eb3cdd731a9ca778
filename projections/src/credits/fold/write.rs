//! Writing back what a batch changed: one multi-row statement per table.

use super::Fold;
use crate::batch::{Value, delete_keys, insert_rows};
use crate::schema::Tables;
use sqlx::AnyConnection;

impl Fold {
    /// Writes what changed: one statement per table (per chunk of rows).
    pub(super) async fn write(
        self,
        conn: &mut AnyConnection,
        tables: &Tables,
    ) -> Result<(), sqlx::Error> {
        let lots: Vec<Vec<Value>> = self
            .lots
            .iter()
            .filter(|(_, lot)| lot.dirty)
            .map(|(id, lot)| {
                vec![
                    Value::Text(id.to_string()),
                    Value::Text(lot.account.clone()),
                    Value::Text(lot.grant_key.clone()),
                    Value::Text(lot.source.clone()),
                    Value::Int(lot.priority),
                    Value::Int(lot.amount),
                    Value::Int(lot.remaining),
                    Value::OptInt(lot.expires_at),
                    Value::Int(lot.granted_at),
                    Value::Int(i64::from(lot.expired)),
                ]
            })
            .collect();
        let t = tables.get("credit_lots");
        insert_rows(
            conn,
            &format!(
                "INSERT INTO {t} (lot_id, account_id, grant_key, source, priority, amount, \
                 remaining, expires_at, granted_at, expired)"
            ),
            "ON CONFLICT (lot_id) DO UPDATE SET remaining = excluded.remaining, \
             expired = excluded.expired",
            10,
            &lots,
        )
        .await?;

        let holds = tables.get("credit_holds");
        let (mut deleted, mut inserted) = (Vec::new(), Vec::new());
        for ((account, generation), slot) in self.holds {
            if slot.deleted_stored {
                deleted.push(vec![
                    Value::Text(account.clone()),
                    Value::Text(generation.clone()),
                ]);
            }
            if let (true, Some(hold)) = (slot.inserted, slot.row) {
                inserted.push(vec![
                    Value::Text(account),
                    Value::Text(generation),
                    Value::Text(hold.feature),
                    Value::Int(hold.amount),
                    Value::Int(hold.held_at),
                    Value::Int(hold.expires_at),
                ]);
            }
        }
        delete_keys(conn, holds, &["account_id", "generation_id"], &deleted).await?;
        insert_rows(
            conn,
            &format!(
                "INSERT INTO {holds} (account_id, generation_id, feature, amount, held_at, expires_at)"
            ),
            "ON CONFLICT (account_id, generation_id) DO NOTHING",
            6,
            &inserted,
        )
        .await?;

        insert_rows(
            conn,
            &format!(
                "INSERT INTO {} (account_id, position, idx, kind, amount, feature, generation_id, \
                 source, lot_id, api_token_id, occurred_at)",
                tables.get("credit_transactions")
            ),
            "ON CONFLICT (account_id, position, idx) DO NOTHING",
            11,
            &self.transactions,
        )
        .await?;

        let balances: Vec<Vec<Value>> = self
            .balances
            .into_iter()
            .filter(|(_, b)| b.changed)
            .map(|(account, b)| {
                vec![
                    Value::Text(account),
                    Value::Int(b.balance),
                    Value::Int(b.held),
                    Value::Int(b.updated_at),
                ]
            })
            .collect();
        insert_rows(
            conn,
            &format!(
                "INSERT INTO {} (account_id, balance, held, updated_at)",
                tables.get("credit_balances")
            ),
            "ON CONFLICT (account_id) DO UPDATE SET balance = excluded.balance, \
             held = excluded.held, updated_at = excluded.updated_at",
            4,
            &balances,
        )
        .await?;
        Ok(())
    }
}
