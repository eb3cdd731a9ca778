//! The plans a connection keeps for the append statements. sqlx prepares each statement
//! once per connection, and PostgreSQL may then run it on a generic plan made while the
//! log was small, where a scan of the whole table costs less than an index probe; such a
//! plan stays while the log grows. Every check of an append must probe an index even
//! then: a single append paid a scan of the log (3 ms at 16,000 events, growing with it)
//! when the event-id check was written as `event_id = ANY($2)`.

use super::statements::{
    Checks, EVENTS_WITH_IDS, GROUP_INSERT, Positions, STREAMS_AND_IDS, append_sql,
};
use crate::Database;
use crate::envelope::ExpectedRevision;
use crate::testkit::TestPostgres;
use sqlx::{Connection, PgConnection, Row};

/// A connection to a new, empty log that plans every prepared statement generically.
async fn generic_planner() -> (TestPostgres, PgConnection) {
    let server = TestPostgres::create().await;
    let db = Database::connect(&server.url, 1)
        .await
        .expect("connect postgres");
    db.migrate().await.expect("migrate postgres");
    let mut conn = PgConnection::connect(&server.url).await.expect("connect");
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    (server, conn)
}

/// Prepares `sql` as `name` with parameters of `types`, and fails if its plan for `args`
/// scans `events`.
async fn assert_probes(conn: &mut PgConnection, name: &str, sql: &str, types: &str, args: &str) {
    sqlx::raw_sql(&format!("PREPARE {name} ({types}) AS {sql}"))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
    let plan: Vec<String> = sqlx::raw_sql(&format!("EXPLAIN EXECUTE {name} ({args})"))
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect();
    assert!(
        !plan.iter().any(|line| line.contains("Seq Scan on events")),
        "{name} scans the log:\n{sql}\n{}",
        plan.join("\n")
    );
}

#[tokio::test]
async fn every_append_statement_probes_indexes_on_a_generic_plan_made_for_an_empty_log() {
    let (_server, mut conn) = generic_planner().await;
    let mut n = 0;
    for expected in [
        ExpectedRevision::NoStream,
        ExpectedRevision::Exact(3),
        ExpectedRevision::Any,
    ] {
        for positions in [Positions::OwnTransaction, Positions::SharedTransaction] {
            for checks in [Checks::Guards, Checks::Keys] {
                n += 1;
                assert_probes(
                    &mut conn,
                    &format!("append_{n}"),
                    &append_sql(expected, positions, checks),
                    "TEXT, UUID[], TEXT[], INT4[], JSONB[], BIGINT, JSONB[]",
                    "'s', ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY[1], \
                     ARRAY['{}'::JSONB], 3, ARRAY['{}'::JSONB]",
                )
                .await;
            }
        }
    }
}

/// The group commit's insert, and the reads that find taken event ids and the streams'
/// ends, probe indexes too.
#[tokio::test]
async fn the_group_insert_and_the_reads_of_taken_ids_probe_indexes_on_a_generic_plan_too() {
    let (_server, mut conn) = generic_planner().await;
    for (name, sql, types, args) in [
        (
            "events_with_ids",
            EVENTS_WITH_IDS,
            "UUID[]",
            "ARRAY[gen_random_uuid()]",
        ),
        (
            "streams_and_ids",
            STREAMS_AND_IDS,
            "TEXT[], UUID[]",
            "ARRAY['s'], ARRAY[gen_random_uuid()]",
        ),
        (
            "group_insert",
            GROUP_INSERT,
            "UUID[], TEXT[], BIGINT[], BOOL[], TEXT[], INT4[], JSONB[], JSONB[], TEXT[], BIGINT[]",
            "ARRAY[gen_random_uuid()], ARRAY['s'], ARRAY[0::BIGINT], ARRAY[true], ARRAY['T'], \
             ARRAY[1], ARRAY['{}'::JSONB], ARRAY['{}'::JSONB], ARRAY['s'], ARRAY[3::BIGINT]",
        ),
    ] {
        assert_probes(&mut conn, name, sql, types, args).await;
    }
}
