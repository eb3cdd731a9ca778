//! The append statements of the PostgreSQL log: one INSERT per append, guarded or
//! trusting the unique keys; a group commit's INSERT of a whole batch; and the reads of
//! the events an append's ids already name and of the streams' ends.
//! Each check is an index probe whatever plan the connection keeps (`generic_plans`).

use crate::envelope::{AppendResult, ExpectedRevision, Metadata, NewEvent};
use crate::error::StoreError;
use sqlx::types::Json;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

/// The stream and position of the events with the ids `$1`, in stream order: one index
/// probe per id (a join, or `event_id = ANY($1)`, could keep a plan that scans the log; see
/// `generic_plans`; `OFFSET 0` keeps the planner from flattening the probe into a join).
pub(super) const EVENTS_WITH_IDS: &str = "SELECT e.stream_id, e.global_position \
     FROM unnest($1::UUID[]) AS i(id) \
     CROSS JOIN LATERAL (SELECT stream_id, global_position, stream_revision FROM events \
                         WHERE event_id = i.id OFFSET 0) AS e \
     ORDER BY e.stream_revision";

/// How the first position of an append is found.
#[derive(Debug, Clone, Copy)]
pub(super) enum Positions {
    /// The append is its transaction's only statement: it starts at `xid << 20`.
    OwnTransaction,
    /// Earlier appends may share the transaction: continue after them.
    SharedTransaction,
}

/// What an insert checks before writing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Checks {
    /// Nothing beyond the stream's existence for `Exact`: the unique keys refuse the rest,
    /// with an error that aborts the transaction (the caller's, for `append_in`).
    Keys,
    /// Also that no event id is taken and no revision after the expected one exists, so
    /// that a refusal by anything committed, or written earlier in the same transaction,
    /// inserts nothing and raises no error: the other appends of a group commit go on.
    /// Only a transaction still open elsewhere can then make the unique keys refuse.
    Guards,
}

/// The append statement for one expectation: insert the next revisions of the stream,
/// numbered after the transaction id.
pub(super) fn append_sql(
    expected: ExpectedRevision,
    positions: Positions,
    checks: Checks,
) -> String {
    const XID: &str = "(pg_current_xact_id()::TEXT::BIGINT)";
    let first = match positions {
        Positions::OwnTransaction => format!("{XID} << 20"),
        Positions::SharedTransaction => format!(
            "coalesce((SELECT max(e.global_position) + 1 FROM events e \
               WHERE e.global_position >= ({XID} << 20) AND e.global_position < (({XID} + 1) << 20)), \
             {XID} << 20)"
        ),
    };
    let (revision, guard) = match expected {
        ExpectedRevision::NoStream => ("-1::BIGINT", "$6::BIGINT IS NULL"),
        ExpectedRevision::Exact(_) => (
            "$6::BIGINT",
            "EXISTS (SELECT 1 FROM events e WHERE e.stream_id = $1 AND e.stream_revision = $6)",
        ),
        ExpectedRevision::Any => (
            "coalesce((SELECT max(e.stream_revision) FROM events e WHERE e.stream_id = $1), -1)",
            "$6::BIGINT IS NULL",
        ),
    };
    let guards = match (checks, expected) {
        (Checks::Keys, _) | (Checks::Guards, ExpectedRevision::Any) => "",
        (Checks::Guards, ExpectedRevision::NoStream) => {
            " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = $1)"
        }
        (Checks::Guards, ExpectedRevision::Exact(_)) => {
            " AND NOT EXISTS (SELECT 1 FROM events e \
                WHERE e.stream_id = $1 AND e.stream_revision = $6 + 1)"
        }
    };
    let ids_free = match checks {
        Checks::Keys => "",
        // One index probe per id, as a scalar subquery: written as `event_id = ANY($2)`,
        // the plan a connection keeps for the statement (made while the log was small)
        // scanned the whole log, and a batch of one paid a scan growing with the log.
        Checks::Guards => {
            " AND NOT EXISTS (SELECT 1 FROM unnest($2::UUID[]) AS i(id) \
                WHERE (SELECT e.event_id FROM events e WHERE e.event_id = i.id) IS NOT NULL)"
        }
    };
    format!(
        "INSERT INTO events (global_position, event_id, stream_id, stream_revision, event_type, \
                             schema_version, data, metadata) \
         SELECT base.first + t.ord - 1, t.id, $1, base.revision + t.ord, t.ty, t.v, t.d, t.m \
         FROM unnest($2::UUID[], $3::TEXT[], $4::INT4[], $5::JSONB[], $7::JSONB[]) \
                  WITH ORDINALITY AS t(id, ty, v, d, m, ord), \
              (SELECT {first} AS first, {revision} AS revision) AS base \
         WHERE {guard}{guards}{ids_free} \
         RETURNING global_position, stream_revision"
    )
}

/// Why an insert wrote nothing.
#[derive(Debug)]
pub(super) enum Refused {
    /// A unique key (event id, or stream and revision) was already taken.
    Taken,
    /// A check found that the append does not fit: the expected revision is not the
    /// stream's (or, with [`Checks::Guards`], an event id is taken).
    Missing,
}

pub(super) async fn insert<'e>(
    executor: impl PgExecutor<'e>,
    stream: &str,
    expected: ExpectedRevision,
    positions: Positions,
    checks: Checks,
    events: &[NewEvent],
) -> Result<Result<AppendResult, Refused>, StoreError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let versions: Vec<i32> = events.iter().map(|e| e.schema_version as i32).collect();
    let data: Vec<&serde_json::Value> = events.iter().map(|e| &e.data).collect();
    let metadata: Vec<Json<&Metadata>> = events.iter().map(|e| Json(&e.metadata)).collect();
    let exact = match expected {
        ExpectedRevision::Exact(n) => Some(n as i64),
        ExpectedRevision::Any | ExpectedRevision::NoStream => None,
    };
    let sql = append_sql(expected, positions, checks);
    let inserted = sqlx::query(&sql)
        .bind(stream)
        .bind(ids)
        .bind(types)
        .bind(versions)
        .bind(data)
        .bind(exact)
        .bind(metadata)
        .fetch_all(executor)
        .await;
    let rows = match inserted {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Ok(Err(Refused::Taken));
        }
        Err(other) => return Err(other.into()),
    };
    if rows.is_empty() {
        return Ok(Err(Refused::Missing));
    }
    let mut appended: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| Ok((r.try_get("stream_revision")?, r.try_get("global_position")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    appended.sort_unstable();
    let last_revision = appended.last().map_or(0, |(r, _)| *r) as u64;
    Ok(Ok(AppendResult::written(
        appended.iter().map(|(_, position)| *position),
        last_revision,
    )))
}

/// The insert of a whole batch, trusting each stream to be as its first append expects
/// (see `group::trusting`); every check one index probe (see `generic_plans`).
pub(super) const GROUP_INSERT: &str = "INSERT INTO events (global_position, event_id, \
                         stream_id, stream_revision, event_type, schema_version, data, metadata) \
     SELECT ((pg_current_xact_id()::TEXT::BIGINT) << 20) + t.ord - 1, t.id, t.s, \
            CASE WHEN t.h THEN coalesce((SELECT max(e.stream_revision) FROM events e \
                                         WHERE e.stream_id = t.s), -1) + 1 + t.r \
                 ELSE t.r END, \
            t.ty, t.v, t.d, t.m \
     FROM unnest($1::UUID[], $2::TEXT[], $3::BIGINT[], $4::BOOL[], $5::TEXT[], \
                 $6::INT4[], $7::JSONB[], $8::JSONB[]) \
          WITH ORDINALITY AS t(id, s, r, h, ty, v, d, m, ord) \
     WHERE (SELECT count(*) FROM unnest($9::TEXT[], $10::BIGINT[]) AS g(s, r) \
            WHERE (SELECT e.stream_revision FROM events e \
                   WHERE e.stream_id = g.s AND e.stream_revision = g.r) IS NOT NULL) \
           = cardinality($9::TEXT[]) \
     RETURNING global_position, stream_revision";

/// The last revision of each stream of `$1`, and the events with the ids `$2` (which are
/// taken): one index probe per stream and per id (see `generic_plans`; `OFFSET 0` keeps
/// the planner from flattening the probe into a join, which it would plan as a scan).
pub(super) const STREAMS_AND_IDS: &str = "SELECT s.id, \
            (SELECT max(e.stream_revision) FROM events e WHERE e.stream_id = s.id), NULL::UUID \
     FROM unnest($1::TEXT[]) AS s(id) \
     UNION ALL SELECT e.stream_id, e.stream_revision, e.event_id \
     FROM unnest($2::UUID[]) AS i(id) \
     CROSS JOIN LATERAL (SELECT stream_id, stream_revision, event_id FROM events \
                         WHERE event_id = i.id OFFSET 0) AS e";
