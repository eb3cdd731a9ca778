//! The projection runner against SQLite and PostgreSQL: read models from real commands,
//! atomic batches and checkpoints, one application per event even with two runners,
//! rebuilds that end with the same rows, and read-your-writes waits.

use async_trait::async_trait;
use commands::accounts::{Accounts, RegisterAccount, SessionPolicy, SignIn};
use commands::passwords::Passwords;
use commands::{CommandContext, EventCodec, Executor, SystemClock};
use domain::account::AccountEvent;
use domain::session::{RevocationReason, SessionOrigin};
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use projections::accounts::AccountRow;
use projections::runner::ProjectionRunner;
use projections::sessions::SessionRow;
use projections::{Follower, ProjectionError, Projector, Table, Tables};
use sqlx::{AnyConnection, Row};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::testkit::{TestPostgres, TestSqlite};
use store::{Actor, Database, DecodedEvent, EventLog, GlobalPosition};
use vault::{DataKeys, EmailIndex, FieldSealer, MasterKey};

struct Fixture {
    db: Database,
    log: Arc<dyn EventLog>,
    codec: EventCodec,
    accounts: Accounts,
    _guards: (Option<TestSqlite>, Option<TestPostgres>),
}

impl Fixture {
    async fn open(url: &str, guards: (Option<TestSqlite>, Option<TestPostgres>)) -> Self {
        let db = Database::connect(url, 8).await.unwrap();
        db.migrate().await.unwrap();
        let log = db.event_log().await.unwrap();
        let master = MasterKey::generate();
        let codec = EventCodec::new(Arc::new(DataKeys::new(db.clone(), &master)));
        let accounts = Accounts::new(
            Executor::new(log.clone(), codec.clone()),
            EmailIndex::new(&master),
            Passwords::new(2),
            Arc::new(store::FolderBlobStore::new(
                std::env::temp_dir().join("blobs-test"),
            )),
            Arc::new(SystemClock),
            SessionPolicy::default(),
        );
        Self {
            db,
            log,
            codec,
            accounts,
            _guards: guards,
        }
    }

    fn runner(&self, projectors: Vec<Arc<dyn Projector>>) -> ProjectionRunner {
        ProjectionRunner::new(
            self.db.clone(),
            self.log.clone(),
            Arc::new(self.codec.clone()),
            projectors,
        )
    }

    /// Some accounts, sessions, a revoke and a password change.
    async fn history(&self) -> GlobalPosition {
        let ctx = CommandContext {
            correlation_id: uuid::Uuid::new_v4(),
            causation_id: None,
            actor: Actor::Anonymous,
            idempotency_key: None,
        };
        let mut last = GlobalPosition::START;
        let batch = uuid::Uuid::new_v4().simple().to_string();
        for n in 0..3 {
            let email = format!("user{n}.{batch}@example.com");
            let (account_id, _) = self
                .accounts
                .register(
                    &ctx,
                    RegisterAccount {
                        email: email.clone(),
                        password: "correct-horse-7-battery".into(),
                        display_name: format!("User {n}"),
                    },
                )
                .await
                .unwrap();
            let mut sessions = Vec::new();
            for device in ["Firefox", "Safari"] {
                let signed_in = self
                    .accounts
                    .sign_in(
                        &ctx,
                        SignIn {
                            email: email.clone(),
                            password: "correct-horse-7-battery".into(),
                            second_factor: None,
                            origin: SessionOrigin {
                                device: device.into(),
                                ip: Some("10.0.0.1".into()),
                                ..Default::default()
                            },
                        },
                    )
                    .await
                    .unwrap();
                sessions.push(signed_in);
            }
            let revoked = self
                .accounts
                .revoke_session(
                    &ctx,
                    account_id,
                    sessions[1].session_id,
                    RevocationReason::Revoked,
                )
                .await
                .unwrap();
            last = revoked.position.unwrap();
        }
        last
    }
}

async fn sqlite() -> Fixture {
    let file = TestSqlite::create();
    let url = file.url.clone();
    Fixture::open(&url, (Some(file), None)).await
}

async fn postgres() -> Fixture {
    let server = TestPostgres::create().await;
    let url = server.url.clone();
    Fixture::open(&url, (None, Some(server))).await
}

/// Every row of a table, as text, in primary-key order.
async fn dump(db: &Database, table: &str, key: &str) -> Vec<Vec<Option<String>>> {
    let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {key}"))
        .fetch_all(db.pool())
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    row.try_get::<Option<String>, _>(i)
                        .or_else(|_| {
                            row.try_get::<Option<i64>, _>(i)
                                .map(|v| v.map(|v| v.to_string()))
                        })
                        .unwrap()
                })
                .collect()
        })
        .collect()
}

/// The accounts and sessions read models as the service reads them (personal columns
/// opened; they are sealed with fresh nonces, so raw rows differ between two folds).
async fn opened(f: &Fixture) -> Vec<(AccountRow, Vec<SessionRow>)> {
    let sealer = FieldSealer::new(f.codec.keys().clone());
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT account_id FROM accounts ORDER BY account_id")
            .fetch_all(f.db.pool())
            .await
            .unwrap();
    let mut view = Vec::new();
    for id in ids {
        let id = AccountId(uuid::Uuid::parse_str(&id).unwrap());
        let account = projections::accounts::find(&f.db, &sealer, id)
            .await
            .unwrap()
            .expect("the account opens");
        let sessions = projections::sessions::list_for_account(
            &f.db,
            &sealer,
            id,
            Timestamp::from_unix_micros(0),
            &projections::Page::first(i64::MAX),
        )
        .await
        .unwrap()
        .items;
        view.push((account, sessions));
    }
    view
}

/// The test projector's checkpoint name.
const COUNTING: Follower = Follower::TokenUsage;

/// Counts applications in one row, so that applying an event twice shows.
struct Counting {
    fail: Arc<AtomicBool>,
    categories: &'static [StreamCategory],
    /// Claims its streams are independent, so a PostgreSQL rebuild runs several writers.
    independent: bool,
    /// Says only registrations concern it ([`Projector::concerns`]).
    registrations_only: bool,
}

impl Counting {
    /// Counts every event.
    fn all(fail: Arc<AtomicBool>) -> Self {
        Self {
            fail,
            categories: &StreamCategory::ALL,
            independent: false,
            registrations_only: false,
        }
    }
}

const COUNTING_TABLES: &[Table] = &[Table {
    name: "applied",
    ddl: &["CREATE TABLE {t} (event_id TEXT PRIMARY KEY, times BIGINT NOT NULL)"],
}];

#[async_trait]
impl Projector for Counting {
    // Names are a closed set; the runner under test holds no other projector, so the
    // test one borrows a real read model's name.
    fn name(&self) -> Follower {
        COUNTING
    }
    fn version(&self) -> i32 {
        1
    }
    fn tables(&self) -> &'static [Table] {
        COUNTING_TABLES
    }
    fn categories(&self) -> &'static [StreamCategory] {
        self.categories
    }
    fn streams_independent(&self) -> bool {
        self.independent
    }
    fn concerns(&self, event: &DecodedEvent) -> bool {
        !self.registrations_only
            || matches!(
                event.event(),
                Some(DomainEvent::Account(AccountEvent::AccountRegistered { .. }))
            )
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let t = tables.get("applied");
        sqlx::query(&format!(
            "INSERT INTO {t} (event_id, times) VALUES ($1, 1) \
             ON CONFLICT (event_id) DO UPDATE SET times = {t}.times + 1"
        ))
        .bind(event.envelope.event_id.to_string())
        .execute(&mut *conn)
        .await?;
        if self.fail.load(Ordering::SeqCst) {
            return Err(
                sqlx::Error::Protocol("simulated crash in the middle of a batch".into()).into(),
            );
        }
        Ok(())
    }
}

/// Runs projection `name` until it has applied everything committed so far. One
/// `catch_up` may stop short on PostgreSQL: a transaction still open anywhere on the server
/// (another test's) keeps events committed after it out of sight for a moment.
async fn caught_up(f: &Fixture, runner: &ProjectionRunner, name: Follower) {
    let head = f.log.committed_head().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        runner.catch_up(name).await.unwrap();
        if runner.checkpoint(name).await.unwrap() >= head {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until readers of the whole log see every committed event (on PostgreSQL a
/// transaction of another test, open on the same server, holds them back a moment).
async fn settled(f: &Fixture) {
    for _ in 0..200 {
        if f.log.head().await.unwrap() == f.log.committed_head().await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("committed events stayed out of sight");
}

/// Stops a runner's spawned tasks and waits for them to end.
async fn stop_all(
    stop: &tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) {
    stop.send(true).unwrap();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}

mod cases;

/// The credit tables, every row in key order.
async fn credit_tables(db: &Database) -> Vec<Vec<Vec<Option<String>>>> {
    vec![
        dump(db, "credit_lots", "lot_id").await,
        dump(db, "credit_holds", "account_id, generation_id").await,
        dump(db, "credit_balances", "account_id").await,
        dump(db, "credit_transactions", "account_id, position, idx").await,
    ]
}

/// The names of the tables a rebuild creates before it swaps them in.
async fn rebuild_tables(db: &Database) -> Vec<String> {
    let sql = match db.backend() {
        store::Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        store::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(db.pool()).await.unwrap();
    names.into_iter().filter(|n| n.contains("__rb")).collect()
}

mod batch_cases;
mod reads;
mod token_scans;

/// The rebuilds registered as running.
async fn rebuild_rows(db: &Database) -> Vec<String> {
    sqlx::query_scalar("SELECT suffix FROM rebuilds ORDER BY suffix")
        .fetch_all(db.pool())
        .await
        .unwrap()
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { cases::$case(super::sqlite().await).await; })*
        }
        mod postgres {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { cases::$case(super::postgres().await).await; })*
        }
    };
}

on_both_backends!(
    read_models_follow_the_commands,
    a_rebuild_ends_with_the_same_rows,
    a_failed_batch_changes_nothing_and_is_applied_once_later,
    two_runners_never_apply_an_event_twice,
    waits_until_a_running_projection_has_applied_a_position,
    a_new_projector_version_rebuilds_at_start,
    a_follower_sees_only_its_streams_and_stores_its_checkpoint_when_idle,
    a_running_follower_stores_what_it_read_past_once_idle,
    a_follower_is_handed_only_the_events_that_concern_it,
    a_credits_rebuild_ends_with_the_rows_the_runner_wrote,
    a_failed_rebuild_leaves_the_live_tables_and_no_fresh_ones,
    what_a_dead_rebuild_left_is_dropped_by_the_next_one,
    token_rotations_written_together_leave_the_rows_of_one_at_a_time,
    balance_cards_read_together_are_the_cards_read_alone,
);

/// Read counts are exact on SQLite only: on PostgreSQL, transactions of other tests on the
/// same server hide events now and then, and each wake-up that follows is one more read
/// (the wake-up itself is tested in `store/tests/contract.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_follower_reads_the_log_once_per_append_on_sqlite() {
    cases::a_caught_up_follower_reads_the_log_once_per_append(sqlite().await).await;
}
