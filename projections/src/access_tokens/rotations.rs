//! Token rotations written a run at a time. One at a time, a rotation took five round trips
//! (the token's account, its hint, the secrets that die, the grace of the one replaced, the
//! new one); every `POST …/rotate` waits for the batch holding it to be applied, so under
//! load a batch of rotations was a few dozen round trips long. The rotations of a batch that
//! follow one another (nothing else touching a token in between) are written with four
//! statements per chunk instead, leaving the rows one at a time leaves.
//!
//! A token rotated again within a run is written once, as its last rotation
//! ([`Rotation::absorb`]): the secrets the earlier ones issued and replaced would die
//! within the same transaction, so only the one the last rotation replaced (written with
//! its grace) and the one it issued are left. A batch holding several rounds of rotations
//! of the same tokens (a client rotating on a schedule, a burst of retries) is one run,
//! not one run per round.

use crate::batch::{Value, chunks, for_connection, insert_rows, numbered, update_by_key};
use crate::schema::Tables;
use domain::access_token::AccessTokenEvent;
use domain::account::AccountEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::{AnyConnection, Row};
use std::collections::{HashMap, HashSet};
use store::DecodedEvent;

/// One rotation of a batch.
pub(super) struct Rotation<'a> {
    token_id: &'a str,
    token_hash: &'a str,
    hint: &'a str,
    previous_hash: &'a str,
    previous_valid_until: i64,
    /// Whether the secret it replaced was issued by an earlier rotation of the same run,
    /// so has no row yet: it is inserted with its grace instead of updated.
    replaced_issued_in_run: bool,
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
            replaced_issued_in_run: false,
        })
    }

    /// The token it rotates.
    pub(super) fn token_id(&self) -> &str {
        self.token_id
    }

    /// Takes `next`, the following rotation of the same token, into this one, so that
    /// writing the result leaves the rows writing both would. Only when `next` replaced
    /// the secret this one issued (as every rotation of a token does; anything else is
    /// left to be written on its own, and `next` is handed back).
    pub(super) fn absorb(&mut self, next: Self) -> Result<(), Self> {
        if next.token_id != self.token_id || next.previous_hash != self.token_hash {
            return Err(next);
        }
        *self = Self {
            replaced_issued_in_run: true,
            ..next
        };
        Ok(())
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
        let sql = format!("{sql} RETURNING token_id");
        let mut query = sqlx::query(&sql);
        for rotation in chunk {
            query = query.bind(rotation.token_id);
        }
        for rotation in chunk {
            query = query.bind(rotation.previous_hash);
        }
        let lost_secrets = query
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<HashSet<_>, _>>()?;
        let graces: Vec<(Value, Value)> = chunk
            .iter()
            .filter(|r| !r.replaced_issued_in_run)
            .map(|r| {
                let grace_end = Value::Int(r.previous_valid_until);
                (Value::Text(r.previous_hash.into()), grace_end)
            })
            .collect();
        let graced = if graces.is_empty() {
            HashSet::new()
        } else {
            update_by_key(conn, h, "valid_until", "token_hash", &graces, "token_hash")
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<HashSet<_>, _>>()?
        };
        // A token whose secrets were dropped meanwhile (a password change revoking every
        // token, committed between a rotation's checks and its append) is dead: its new
        // secret is not written. A live token still had the secret its run replaced first:
        // graced, or (the run rotated it more than once) deleted just now.
        let live = |r: &Rotation<'_>| {
            if r.replaced_issued_in_run {
                lost_secrets.contains(r.token_id)
            } else {
                graced.contains(r.previous_hash)
            }
        };
        let row = |hash: &str, token: &str, account: &str, valid_until| {
            vec![
                Value::Text(hash.to_owned()),
                Value::Text(token.to_owned()),
                Value::Text(account.to_owned()),
                Value::OptInt(valid_until),
            ]
        };
        let mut fresh: Vec<Vec<Value>> = Vec::with_capacity(chunk.len());
        for rotation in chunk.iter().filter(|r| live(r)) {
            let Some(account) = accounts.get(rotation.token_id) else {
                continue;
            };
            let token = rotation.token_id;
            fresh.push(row(rotation.token_hash, token, account, None));
            if rotation.replaced_issued_in_run {
                let grace_end = Some(rotation.previous_valid_until);
                fresh.push(row(rotation.previous_hash, token, account, grace_end));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::Rotation;

    fn rotation<'a>(token: &'a str, from: &'a str, to: &'a str, grace: i64) -> Rotation<'a> {
        Rotation {
            token_id: token,
            token_hash: to,
            hint: to,
            previous_hash: from,
            previous_valid_until: grace,
            replaced_issued_in_run: false,
        }
    }

    #[test]
    fn a_rotation_of_the_secret_the_run_issued_is_taken_in_as_the_last_one() {
        let mut first = rotation("t", "a", "b", 10);
        assert!(first.absorb(rotation("t", "b", "c", 20)).is_ok());
        assert!(first.absorb(rotation("t", "c", "d", 30)).is_ok());
        assert_eq!(
            (first.token_hash, first.hint, first.previous_hash),
            ("d", "d", "c")
        );
        assert_eq!(first.previous_valid_until, 30, "the last rotation's grace");
        assert!(
            first.replaced_issued_in_run,
            "c has no row yet: inserted with its grace"
        );
    }

    #[test]
    fn a_rotation_that_did_not_replace_the_runs_secret_is_handed_back() {
        let mut first = rotation("t", "a", "b", 10);
        let apart = first
            .absorb(rotation("t", "x", "c", 20))
            .expect_err("c replaced x, not b");
        assert_eq!(apart.token_hash, "c");
        assert_eq!(
            (first.token_hash, first.replaced_issued_in_run),
            ("b", false)
        );
        assert!(
            first.absorb(rotation("u", "b", "c", 20)).is_err(),
            "another token"
        );
    }
}
