//! The projection runner against SQLite and PostgreSQL: read models from real commands,
//! atomic batches and checkpoints, one application per event even with two runners,
//! rebuilds that end with the same rows, and read-your-writes waits.

use async_trait::async_trait;
use commands::accounts::{Accounts, RegisterAccount, SessionPolicy, SignIn};
use commands::passwords::Passwords;
use commands::{CommandContext, EventCodec, Executor, SystemClock};
use domain::session::{RevocationReason, SessionOrigin};
use domain::{AccountId, StreamCategory, Timestamp};
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
}

impl Counting {
    /// Counts every event.
    fn all(fail: Arc<AtomicBool>) -> Self {
        Self {
            fail,
            categories: &StreamCategory::ALL,
            independent: false,
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

mod cases {
    pub use super::more_cases::*;
    use super::*;

    pub async fn read_models_follow_the_commands(f: Fixture) {
        let last = f.history().await;
        let runner = f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone())));
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, Follower::Accounts).await;
        caught_up(&f, &runner, Follower::Sessions).await;
        assert!(runner.checkpoint(Follower::Sessions).await.unwrap() >= last);
        let accounts = dump(&f.db, "accounts", "account_id").await;
        assert_eq!(accounts.len(), 3);
        let sessions = dump(&f.db, "sessions", "session_id").await;
        assert_eq!(
            sessions.len(),
            3,
            "one of each account's two sessions was revoked"
        );
        assert!(
            sessions.iter().all(|row| !row
                .iter()
                .any(|c| c.as_deref().is_some_and(|c| c.contains("Firefox")))),
            "the origin is sealed"
        );
        let view = opened(&f).await;
        assert!(
            view.iter()
                .all(|(_, sessions)| sessions.len() == 1 && sessions[0].origin.device == "Firefox"),
            "and opens: {view:?}"
        );
    }

    pub async fn a_rebuild_ends_with_the_same_rows(f: Fixture) {
        f.history().await;
        let runner = f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone())));
        runner.prepare().await.unwrap();
        for name in runner.names() {
            caught_up(&f, &runner, name).await;
        }
        let before = opened(&f).await;
        let checkpoint = runner.checkpoint(Follower::Sessions).await.unwrap();

        // Damage the live tables: the rebuild must not depend on them.
        sqlx::query("DELETE FROM sessions")
            .execute(f.db.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE accounts SET display_name = 'tampered'")
            .execute(f.db.pool())
            .await
            .unwrap();

        for name in runner.names() {
            let report = runner.rebuild(name).await.unwrap();
            assert_eq!(report.position, checkpoint);
        }
        assert_eq!(before, opened(&f).await);
        // The rebuilt tables keep working: new events land in them.
        f.history().await;
        caught_up(&f, &runner, Follower::Sessions).await;
        assert_eq!(dump(&f.db, "sessions", "session_id").await.len(), 6);
        // And a second rebuild finds no leftover names in its way.
        runner.rebuild(Follower::Sessions).await.unwrap();
        assert_eq!(dump(&f.db, "sessions", "session_id").await.len(), 6);
    }

    pub async fn a_failed_batch_changes_nothing_and_is_applied_once_later(f: Fixture) {
        f.history().await;
        let fail = Arc::new(AtomicBool::new(true));
        let runner = f.runner(vec![Arc::new(Counting::all(fail.clone()))]);
        runner.prepare().await.unwrap();
        assert!(runner.catch_up(COUNTING).await.is_err());
        assert_eq!(
            runner.checkpoint(COUNTING).await.unwrap(),
            GlobalPosition::START
        );
        assert!(
            dump(&f.db, "applied", "event_id").await.is_empty(),
            "the batch was rolled back"
        );

        fail.store(false, Ordering::SeqCst);
        caught_up(&f, &runner, COUNTING).await;
        let rows = dump(&f.db, "applied", "event_id").await;
        let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
        assert_eq!(rows.len(), events.len());
        assert!(
            rows.iter().all(|row| row[1].as_deref() == Some("1")),
            "each event applied once"
        );
    }

    pub async fn two_runners_never_apply_an_event_twice(f: Fixture) {
        f.history().await;
        let fail = Arc::new(AtomicBool::new(false));
        let a = Arc::new(f.runner(vec![Arc::new(Counting::all(fail.clone()))]));
        let b = Arc::new(f.runner(vec![Arc::new(Counting::all(fail))]));
        a.prepare().await.unwrap();
        b.prepare().await.unwrap();
        let (ra, rb) = tokio::join!(a.catch_up(COUNTING), b.catch_up(COUNTING));
        ra.unwrap();
        rb.unwrap();
        caught_up(&f, &a, COUNTING).await;
        let rows = dump(&f.db, "applied", "event_id").await;
        let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
        assert_eq!(rows.len(), events.len());
        assert!(
            rows.iter().all(|row| row[1].as_deref() == Some("1")),
            "each event applied once"
        );
    }

    /// A follower is handed only the events of its streams; it reads past the others
    /// without writing, and a catch-up stores its checkpoint once it runs out of events.
    pub async fn a_follower_sees_only_its_streams_and_stores_its_checkpoint_when_idle(f: Fixture) {
        let counted = |events: &[store::RecordedEvent]| {
            events
                .iter()
                .filter(|e| StreamCategory::of_stream(&e.stream) == Some(StreamCategory::Email))
                .count()
        };
        let last = f.history().await;
        let runner = f.runner(vec![Arc::new(Counting {
            fail: Arc::new(AtomicBool::new(false)),
            categories: &[StreamCategory::Email],
            independent: false,
        })]);
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, COUNTING).await;
        assert!(runner.checkpoint(COUNTING).await.unwrap() >= last);
        f.history().await;
        caught_up(&f, &runner, COUNTING).await;

        let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
        let ours = counted(&events);
        assert!(
            ours > 0 && ours < events.len(),
            "{ours} of {}",
            events.len()
        );
        let rows = dump(&f.db, "applied", "event_id").await;
        assert_eq!(rows.len(), ours, "only the e-mail streams' events");
        assert!(rows.iter().all(|row| row[1].as_deref() == Some("1")));
        assert_eq!(
            runner.checkpoint(COUNTING).await.unwrap(),
            events.last().unwrap().position,
            "stored at the last event read, though it concerns another stream"
        );
    }

    /// A running follower that read past events of other streams stores how far it read
    /// once idle, without another append to wake it (its loop wakes for the store).
    pub async fn a_running_follower_stores_what_it_read_past_once_idle(f: Fixture) {
        let runner = Arc::new(f.runner(vec![Arc::new(Counting {
            fail: Arc::new(AtomicBool::new(false)),
            categories: &[StreamCategory::Email],
            independent: false,
        })]));
        runner.prepare().await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = runner.spawn(stopped);
        let last = f.history().await;
        let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
        assert_ne!(
            StreamCategory::of_stream(&events.last().unwrap().stream),
            Some(StreamCategory::Email),
            "the history ends with events the follower reads past"
        );
        // Nothing is appended from here on.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while runner.checkpoint(COUNTING).await.unwrap() < last {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the idle follower never stored how far it read"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runner.checkpoint(COUNTING).await.unwrap(), last);
        stop_all(&stop, tasks).await;
    }

    pub async fn waits_until_a_running_projection_has_applied_a_position(f: Fixture) {
        let runner =
            Arc::new(f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone()))));
        runner.prepare().await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = runner.spawn(stopped);
        let last = f.history().await;
        runner
            .wait_for(
                &[Follower::Sessions, Follower::Accounts],
                last,
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert!(runner.checkpoint(Follower::Sessions).await.unwrap() >= last);
        let lagging = runner
            .wait_for(
                &[Follower::Sessions],
                GlobalPosition(u64::MAX / 2),
                Duration::from_millis(300),
            )
            .await;
        assert!(matches!(lagging, Err(ProjectionError::Lagging { .. })));
        stop_all(&stop, tasks).await;
    }

    pub async fn a_new_projector_version_rebuilds_at_start(f: Fixture) {
        f.history().await;
        let runner = f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone())));
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, Follower::Accounts).await;
        sqlx::query("UPDATE projection_checkpoints SET version = 0 WHERE name = 'accounts'")
            .execute(f.db.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM accounts")
            .execute(f.db.pool())
            .await
            .unwrap();
        runner.prepare().await.unwrap();
        assert_eq!(dump(&f.db, "accounts", "account_id").await.len(), 3);
    }
}

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

mod more_cases {
    use super::*;
    use commands::credits::{Credits, Grant};
    use domain::credits::{Feature, ReleaseReason, SourceKind};

    /// Ledgers of many accounts (so that a PostgreSQL rebuild spreads them over its
    /// writers), each with a grant, a settled, an open and a released generation.
    pub async fn a_credits_rebuild_ends_with_the_rows_the_runner_wrote(f: Fixture) {
        let credits = Credits::new(
            Executor::new(f.log.clone(), f.codec.clone()),
            Arc::new(SystemClock),
            Duration::from_secs(3600),
        );
        let ctx = CommandContext::system("test");
        for _ in 0..24 {
            let account = AccountId(uuid::Uuid::new_v4());
            let grant = Grant {
                grant_key: "welcome".into(),
                amount: 1_000,
                source: SourceKind::Purchase,
                expires_at: None,
            };
            let now = commands::Clock::now(&SystemClock);
            credits.grant(&ctx, account, grant, now).await.unwrap();
            for generation in ["settled", "open", "released"] {
                credits
                    .hold(&ctx, account, generation, Feature::Generation, 30, None)
                    .await
                    .unwrap();
            }
            credits
                .settle(&ctx, account, "settled", 20, None)
                .await
                .unwrap();
            credits
                .release(&ctx, account, "released", ReleaseReason::Failed, None)
                .await
                .unwrap();
        }
        let runner = f.runner(vec![Arc::new(projections::credits::CreditsProjector)]);
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, Follower::Credits).await;
        let live = credit_tables(&f.db).await;
        assert_eq!(live[1].len(), 24, "one open hold per account");
        assert_eq!(live[2].len(), 24, "one balance per account");
        assert!(
            live[2]
                .iter()
                .all(|row| row[1].as_deref() == Some("950") && row[2].as_deref() == Some("30")),
            "1000 granted, 20 spent, 30 held: {:?}",
            live[2]
        );
        sqlx::query("DELETE FROM credit_balances")
            .execute(f.db.pool())
            .await
            .unwrap();

        runner.rebuild(Follower::Credits).await.unwrap();
        assert_eq!(credit_tables(&f.db).await, live);
        assert!(rebuild_tables(&f.db).await.is_empty());
        assert!(rebuild_rows(&f.db).await.is_empty());
    }

    /// Cards read together, an account asked for twice, or through the reader that gathers
    /// concurrent reads, are the cards read one at a time: held credits, the lots that
    /// count at the instant asked (spending order, expired ones left out), where the ledger
    /// ends, and an empty card for an account without credits.
    pub async fn balance_cards_read_together_are_the_cards_read_alone(f: Fixture) {
        use projections::credits::{CardReader, balance_cards};
        let credits = Credits::new(
            Executor::new(f.log.clone(), f.codec.clone()),
            Arc::new(SystemClock),
            Duration::from_secs(3600),
        );
        let ctx = CommandContext::system("test");
        let now = commands::Clock::now(&SystemClock);
        let grant = |key: &str, amount, expires_at| Grant {
            grant_key: key.into(),
            amount,
            source: SourceKind::Purchase,
            expires_at,
        };
        let (spender, expiring, empty) = (
            AccountId(uuid::Uuid::new_v4()),
            AccountId(uuid::Uuid::new_v4()),
            AccountId(uuid::Uuid::new_v4()),
        );
        credits
            .grant(&ctx, spender, grant("a", 1_000, None), now)
            .await
            .unwrap();
        credits
            .hold(&ctx, spender, "open", Feature::Generation, 30, None)
            .await
            .unwrap();
        let soon = now.plus(Duration::from_secs(60));
        credits
            .grant(&ctx, expiring, grant("b", 500, Some(soon)), now)
            .await
            .unwrap();
        credits
            .grant(&ctx, expiring, grant("c", 100, None), now)
            .await
            .unwrap();
        let runner = f.runner(vec![Arc::new(projections::credits::CreditsProjector)]);
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, Follower::Credits).await;

        let later = soon.plus(Duration::from_secs(1));
        for at in [now, later] {
            let together = balance_cards(&f.db, &[spender, expiring, empty, spender], at, true)
                .await
                .unwrap();
            assert_eq!(together.len(), 3);
            for account in [spender, expiring, empty] {
                let alone = balance_cards(&f.db, &[account], at, true).await.unwrap();
                assert_eq!(together[&account], alone[&account]);
            }
        }
        let cards = balance_cards(&f.db, &[spender, expiring, empty], now, true)
            .await
            .unwrap();
        let spender_card = &cards[&spender];
        assert_eq!(spender_card.held, 30);
        assert_eq!(
            spender_card
                .lots
                .iter()
                .map(|l| l.remaining)
                .collect::<Vec<_>>(),
            [970]
        );
        let ledger = StreamCategory::Credits.stream(spender);
        assert_eq!(
            spender_card.ledger_end,
            f.log.stream_last_position(&ledger).await.unwrap()
        );
        assert!(spender_card.ledger_end.is_some());
        let amounts = |card: &projections::credits::BalanceCard| {
            card.lots.iter().map(|l| l.amount).collect::<Vec<_>>()
        };
        assert_eq!(
            amounts(&cards[&expiring]),
            [500, 100],
            "the sooner expiry first"
        );
        assert_eq!(cards[&empty], Default::default());
        let after = balance_cards(&f.db, &[expiring], later, false)
            .await
            .unwrap();
        assert_eq!(
            amounts(&after[&expiring]),
            [100],
            "an expired lot no longer counts"
        );
        assert_eq!(after[&expiring].ledger_end, None, "not asked for");

        let reader = CardReader::new(f.db.clone(), true);
        let reads: Vec<_> = (0..48)
            .map(|i| {
                let (reader, account) = (reader.clone(), [spender, expiring, empty][i % 3]);
                tokio::spawn(async move { (account, reader.card(account, now).await.unwrap()) })
            })
            .collect();
        for read in reads {
            let (account, card) = read.await.unwrap();
            assert_eq!(card, cards[&account]);
        }
    }

    /// Signs up `email` and signs in: the account and a session fresh enough to issue tokens.
    async fn signed_up(f: &Fixture, email: &str) -> (AccountId, domain::SessionId) {
        let ctx = CommandContext::system("test");
        let register = RegisterAccount {
            email: email.into(),
            password: "correct-horse-7-battery".into(),
            display_name: "Rotator".into(),
        };
        let (account, _) = f.accounts.register(&ctx, register).await.unwrap();
        let sign_in = SignIn {
            email: email.into(),
            password: "correct-horse-7-battery".into(),
            second_factor: None,
            origin: SessionOrigin::default(),
        };
        let signed_in = f.accounts.sign_in(&ctx, sign_in).await.unwrap();
        (account, signed_in.session_id)
    }

    /// The access-token projector writes a run of rotations together: the rows it leaves
    /// are those of one event at a time, with a token rotated twice in one batch, a
    /// rotation with and without grace, a rotation then a revocation, and a rotation then
    /// a password change revoking the account's tokens (which must not bring a secret back).
    pub async fn token_rotations_written_together_leave_the_rows_of_one_at_a_time(f: Fixture) {
        use commands::access_tokens::{AccessTokens, NewAccessToken};
        use commands::accounts::ChangePassword;
        use domain::access_token::{Scope, TokenKind};
        let tokens = AccessTokens::new(
            Executor::new(f.log.clone(), f.codec.clone()),
            Arc::new(SystemClock),
        );
        let ctx = CommandContext::system("test");
        let batch = uuid::Uuid::new_v4().simple().to_string();
        let (owner, session) = signed_up(&f, &format!("owner.{batch}@example.com")).await;
        let (other, other_session) = signed_up(&f, &format!("other.{batch}@example.com")).await;
        let new = || NewAccessToken {
            kind: TokenKind::Api,
            label: "ci".into(),
            scopes: vec![Scope::CreditsRead],
            expires_in_days: None,
        };
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(
                tokens
                    .create(&ctx, owner, session, new())
                    .await
                    .unwrap()
                    .token_id,
            );
        }
        let theirs = tokens
            .create(&ctx, other, other_session, new())
            .await
            .unwrap()
            .token_id;
        let hour = Duration::from_secs(3600);
        let rotate = |id, grace| tokens.rotate(&ctx, owner, id, grace);
        rotate(ids[0], Duration::ZERO).await.unwrap();
        rotate(ids[1], hour).await.unwrap();
        tokens.rotate(&ctx, other, theirs, hour).await.unwrap();
        f.accounts
            .change_password(
                &ctx,
                other,
                other_session,
                ChangePassword {
                    current_password: "correct-horse-7-battery".into(),
                    new_password: "another-horse-8-staple".into(),
                    sign_out_other_sessions: false,
                    revoke_tokens: true,
                },
            )
            .await
            .unwrap();
        rotate(ids[2], hour).await.unwrap();
        let last_c = rotate(ids[2], hour).await.unwrap();
        rotate(ids[3], hour).await.unwrap();
        tokens.revoke(&ctx, owner, ids[3]).await.unwrap();
        let last_a = rotate(ids[0], hour).await.unwrap();

        let runner = f.runner(vec![Arc::new(
            projections::access_tokens::AccessTokensProjector,
        )]);
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, Follower::AccessTokens).await;
        let hashes = dump(&f.db, "access_token_hashes", "token_hash").await;
        let of = |id: uuid::Uuid| -> Vec<Option<String>> {
            hashes
                .iter()
                .filter(|row| row[1].as_deref() == Some(id.to_string().as_str()))
                .map(|row| row[3].clone())
                .collect()
        };
        // The secret in use, and the one replaced last living out its grace.
        for id in [ids[0], ids[1], ids[2]] {
            let mut until = of(id);
            until.sort();
            assert_eq!(until.len(), 2, "{id}: {hashes:?}");
            assert!(until[0].is_none() && until[1].is_some(), "{id}: {until:?}");
        }
        assert!(of(ids[3]).is_empty(), "revoked after its rotation");
        assert!(
            of(theirs).is_empty(),
            "revoked by the password change after its rotation"
        );
        let live = dump(&f.db, "access_tokens", "token_id").await;
        let hint = |id: uuid::Uuid| {
            live.iter()
                .find(|row| row[0].as_deref() == Some(id.to_string().as_str()))
                .and_then(|row| row[5].clone())
        };
        assert_eq!(hint(ids[0]), Some(last_a.hint));
        assert_eq!(hint(ids[2]), Some(last_c.hint));

        // The same events folded one at a time.
        let one_at_a_time = f.runner(vec![Arc::new(OneAtATime(
            projections::access_tokens::AccessTokensProjector,
        ))]);
        one_at_a_time.rebuild(Follower::AccessTokens).await.unwrap();
        assert_eq!(
            dump(&f.db, "access_token_hashes", "token_hash").await,
            hashes
        );
        assert_eq!(dump(&f.db, "access_tokens", "token_id").await, live);
    }

    /// A projector folded one event at a time: `apply_batch` left to its default.
    struct OneAtATime<P>(P);

    #[async_trait]
    impl<P: Projector> Projector for OneAtATime<P> {
        fn name(&self) -> Follower {
            self.0.name()
        }
        fn version(&self) -> i32 {
            self.0.version()
        }
        fn tables(&self) -> &'static [Table] {
            self.0.tables()
        }
        fn categories(&self) -> &'static [StreamCategory] {
            self.0.categories()
        }
        async fn apply(
            &self,
            conn: &mut AnyConnection,
            tables: &Tables,
            event: &DecodedEvent,
        ) -> Result<(), ProjectionError> {
            self.0.apply(conn, tables, event).await
        }
    }

    /// A writer that fails stops the rebuild: the live tables stay as they were and the
    /// fresh ones are dropped, whichever writer failed.
    pub async fn a_failed_rebuild_leaves_the_live_tables_and_no_fresh_ones(f: Fixture) {
        f.history().await;
        let fail = Arc::new(AtomicBool::new(false));
        let runner = f.runner(vec![Arc::new(Counting {
            fail: fail.clone(),
            categories: &StreamCategory::ALL,
            independent: true,
        })]);
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, COUNTING).await;
        let live = dump(&f.db, "applied", "event_id").await;
        assert!(!live.is_empty());

        fail.store(true, Ordering::SeqCst);
        assert!(runner.rebuild(COUNTING).await.is_err());
        assert_eq!(dump(&f.db, "applied", "event_id").await, live);
        assert!(rebuild_tables(&f.db).await.is_empty());

        // Once the cause is gone, a rebuild applies every event exactly once.
        fail.store(false, Ordering::SeqCst);
        runner.rebuild(COUNTING).await.unwrap();
        let rebuilt = dump(&f.db, "applied", "event_id").await;
        assert_eq!(rebuilt, live);
        assert!(rebuilt.iter().all(|row| row[1].as_deref() == Some("1")));
        assert!(rebuild_rows(&f.db).await.is_empty());
    }

    /// A rebuild whose process died leaves its fresh tables and its row: the next rebuild
    /// (or start) drops them, and rebuild tables no row names, but leaves alone a rebuild
    /// still running elsewhere.
    pub async fn what_a_dead_rebuild_left_is_dropped_by_the_next_one(f: Fixture) {
        f.history().await;
        let runner = f.runner(vec![Arc::new(Counting {
            fail: Arc::new(AtomicBool::new(false)),
            categories: &StreamCategory::ALL,
            independent: false,
        })]);
        runner.prepare().await.unwrap();
        caught_up(&f, &runner, COUNTING).await;
        let live = dump(&f.db, "applied", "event_id").await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let stale = now - projections::rebuild::STALE_AFTER_SECS - 1;
        // Died an hour ago; ran before rebuilds registered; running on another node.
        for (suffix, heartbeat) in [
            ("__rb0000dead", Some(stale)),
            ("__rb0badf00d", None),
            ("__rb11111111", Some(now)),
        ] {
            let table = format!("applied{suffix}");
            sqlx::query(&format!("CREATE TABLE {table} (event_id TEXT PRIMARY KEY)"))
                .execute(f.db.pool())
                .await
                .unwrap();
            if let Some(heartbeat) = heartbeat {
                sqlx::query(
                    "INSERT INTO rebuilds (suffix, projection, shadow_tables, heartbeat_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(suffix)
                .bind(COUNTING.key())
                .bind(&table)
                .bind(heartbeat)
                .execute(f.db.pool())
                .await
                .unwrap();
            }
        }

        runner.rebuild(COUNTING).await.unwrap();
        assert_eq!(
            rebuild_tables(&f.db).await,
            vec!["applied__rb11111111".to_owned()]
        );
        assert_eq!(rebuild_rows(&f.db).await, vec!["__rb11111111".to_owned()]);
        assert_eq!(dump(&f.db, "applied", "event_id").await, live);

        // The other node's rebuild dies too: the next start drops what it left.
        sqlx::query("UPDATE rebuilds SET heartbeat_at = $1")
            .bind(stale)
            .execute(f.db.pool())
            .await
            .unwrap();
        runner.prepare().await.unwrap();
        assert!(rebuild_tables(&f.db).await.is_empty());
        assert!(rebuild_rows(&f.db).await.is_empty());
        assert_eq!(dump(&f.db, "applied", "event_id").await, live);
    }
}

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
    a_credits_rebuild_ends_with_the_rows_the_runner_wrote,
    a_failed_rebuild_leaves_the_live_tables_and_no_fresh_ones,
    what_a_dead_rebuild_left_is_dropped_by_the_next_one,
    token_rotations_written_together_leave_the_rows_of_one_at_a_time,
    balance_cards_read_together_are_the_cards_read_alone,
);
