//! Token rotations written a run at a time. One at a time, a rotation took five round trips
//! (the token's account, its hint, the secrets that die, the grace of the one replaced, the
//! new one); every `POST …/rotate` waits for the batch holding it to be applied, so under
//! load a batch of rotations was a few dozen round trips long. The rotations of a batch that
//! follow one another (nothing else touching a token in between, each token once) are
//! written with four statements per chunk instead, leaving the rows one at a time leaves.

use crate::batch::{Value, chunks, for_connection, insert_rows, numbered, update_by_key};
use crate::schema::Tables;
use domain::access_token::AccessTokenEvent;
use domain::account::AccountEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use store::DecodedEvent;

/// One rotation of a batch.
pub(super) struct Rotation<'a> {
    token_id: &'a str,
    token_hash: &'a str,
    hint: &'a str,
    previous_hash: &'a str,
    previous_valid_until: i64,
}

impl<'a> Rotation<'a> {
    /// The rotation `decoded` records, if it is one.
    pub(super) fn of(decoded: &'a DecodedEvent) -> Option<Self> {
        let Some(DomainEvent::AccessToken(AccessTokenEvent::AccessTokenRotated {
            token_hash,
            hint,
            previous_hash,
            previous_valid_until,
            ..
        })) = decoded.event()
        else {
            return None;
        };
        Some(Self {
            token_id: StreamCategory::AccessToken.id_in(decoded.envelope.stream.as_str())?,
            token_hash,
            hint,
            previous_hash,
            previous_valid_until: previous_valid_until.unix_micros(),
        })
    }

    /// The token it rotates.
    pub(super) fn token_id(&self) -> &str {
        self.token_id
    }
}

/// Whether `decoded` may write rows of the token tables, so that a run of rotations must be
/// written before it is applied. Every other event the projector reads (an account's plan,
/// account events that do not revoke tokens) commutes with rotations.
pub(super) fn touches_tokens(decoded: &DecodedEvent) -> bool {
    matches!(
        decoded.event(),
        Some(
            DomainEvent::AccessToken(_)
                | DomainEvent::Account(
                    AccountEvent::AccountDeleted { .. }
                        | AccountEvent::PasswordChanged {
                            tokens_revoked: true,
                            ..
                        }
                )
        )
    )
}

/// Keeps PostgreSQL on plain index scans for the rest of `conn`'s transaction (a no-op on
/// SQLite). Every rotation deletes a secret's row and inserts another, so between two
/// vacuums a busy token's rows are mostly dead: its entries in the `token_id` index, and
/// the table's pages. A plain index scan marks the dead entries it passes and the next one
/// skips them. The bitmap scan the planner prefers for `token_id IN (…)` never marks them,
/// and a sequential scan (its choice while the statistics say the table is small) reads
/// every page: either way each rotation's `DELETE` went through all the dead rows again,
/// growing from 0.07 to 1.9 ms within a 30-second bench and holding every rotation's read
/// model behind it. All of this projector's statements look rows up by key, so nothing
/// else in its transaction wants another kind of scan.
pub(super) async fn index_scans_only(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query(
            "SELECT set_config('enable_bitmapscan', 'off', true), \
             set_config('enable_seqscan', 'off', true)",
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Applies `run` (rotations of distinct tokens, in log order) inside `conn`'s transaction.
pub(super) async fn apply_run(
    conn: &mut AnyConnection,
    tables: &Tables,
    run: &[Rotation<'_>],
) -> Result<(), sqlx::Error> {
    let (t, h) = (
        tables.get("access_tokens"),
        tables.get("access_token_hashes"),
    );
    // Three bound values per rotation in the widest statement.
    for chunk in chunks(run, 3) {
        let n = chunk.len();
        // The new hints, and the account of each token the read model has: a rotation of
        // a token it does not have changes nothing.
        let hints: Vec<(Value, Value)> = chunk
            .iter()
            .map(|r| (Value::Text(r.token_id.into()), Value::Text(r.hint.into())))
            .collect();
        let accounts = update_by_key(conn, t, "hint", "token_id", &hints, "token_id, account_id")
            .await?
            .iter()
            .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?)))
            .collect::<Result<HashMap<_, _>, sqlx::Error>>()?;
        if accounts.is_empty() {
            continue;
        }
        // Earlier secrets die now; the one each rotation replaced lives out its grace. A
        // hash is a key, so it is one token's: "none of the replaced hashes" is "not this
        // token's replaced one". A token the read model does not have has no hashes either.
        let sql = for_connection(
            conn,
            format!(
                "DELETE FROM {h} WHERE token_id IN ({}) AND token_hash NOT IN ({})",
                numbered(1, n),
                numbered(n + 1, n)
            ),
        );
        let mut query = sqlx::query(&sql);
        for rotation in chunk {
            query = query.bind(rotation.token_id);
        }
        for rotation in chunk {
            query = query.bind(rotation.previous_hash);
        }
        query.execute(&mut *conn).await?;
        let graces: Vec<(Value, Value)> = chunk
            .iter()
            .map(|r| {
                let grace_end = Value::Int(r.previous_valid_until);
                (Value::Text(r.previous_hash.into()), grace_end)
            })
            .collect();
        update_by_key(conn, h, "valid_until", "token_hash", &graces, "").await?;
        let fresh: Vec<Vec<Value>> = chunk
            .iter()
            .filter_map(|rotation| {
                let account = accounts.get(rotation.token_id)?;
                Some(vec![
                    Value::Text(rotation.token_hash.to_owned()),
                    Value::Text(rotation.token_id.to_owned()),
                    Value::Text(account.clone()),
                    Value::OptInt(None),
                ])
            })
            .collect();
        insert_rows(
            conn,
            &format!("INSERT INTO {h} (token_hash, token_id, account_id, valid_until)"),
            "ON CONFLICT (token_hash) DO NOTHING",
            4,
            &fresh,
        )
        .await?;
    }
    Ok(())
}
