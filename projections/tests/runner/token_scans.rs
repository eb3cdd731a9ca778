//! The access-token read model on PostgreSQL between two vacuums: a busy token's rows are
//! mostly dead, and a rotation must not visit them all again (its `DELETE` grew from 0.07
//! to 1.9 ms within a 30-second bench when the planner chose a bitmap or sequential scan).

use super::*;
use commands::access_tokens::{AccessTokens, NewAccessToken, TokenFamily};
use domain::access_token::{Scope, TokenKind};
use std::sync::Mutex;

/// Tokens rotated together, as under load (the rotations of a batch are written together).
const TOKENS: usize = 8;

/// Dead rows of each token left in the secrets' table, as between two vacuums.
const DEAD_ROWS: i64 = 2_500;

/// The access-token projector, recording how many heap blocks of the secrets' table each
/// batch's transaction fetched.
struct HeapBlocks {
    inner: projections::access_tokens::AccessTokensProjector,
    fetched: Arc<Mutex<Vec<i64>>>,
}

#[async_trait]
impl Projector for HeapBlocks {
    fn name(&self) -> Follower {
        self.inner.name()
    }
    fn version(&self) -> i32 {
        self.inner.version()
    }
    fn tables(&self) -> &'static [Table] {
        self.inner.tables()
    }
    fn categories(&self) -> &'static [StreamCategory] {
        self.inner.categories()
    }
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        self.inner.apply(conn, tables, event).await
    }
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        // This transaction's own count, so other sessions cannot blur it; a difference, as
        // the session's count also holds its earlier transactions' until it reports them.
        let fetched = format!(
            "SELECT pg_stat_get_xact_blocks_fetched('{}'::regclass)",
            tables.get("access_token_hashes")
        );
        let before: i64 = sqlx::query_scalar(&fetched).fetch_one(&mut *conn).await?;
        self.inner.apply_batch(conn, tables, events).await?;
        let after: i64 = sqlx::query_scalar(&fetched).fetch_one(&mut *conn).await?;
        self.fetched.lock().unwrap().push(after - before);
        Ok(())
    }
}

/// After the first rotations have passed the dead rows once, the next ones read a handful
/// of the table's blocks each, not every block holding them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_does_not_read_a_busy_tokens_dead_rows_again_on_postgres() {
    let f = postgres().await;
    let fetched = Arc::new(Mutex::new(Vec::new()));
    let runner = f.runner(vec![Arc::new(HeapBlocks {
        inner: projections::access_tokens::AccessTokensProjector::new(FieldSealer::new(
            f.codec.keys().clone(),
        )),
        fetched: fetched.clone(),
    })]);
    runner.prepare().await.unwrap();
    let tokens = AccessTokens::new(
        Executor::new(f.log.clone(), f.codec.clone()),
        Arc::new(SystemClock),
    );
    let ctx = CommandContext::system("test");
    let (owner, session) = batch_cases::signed_up(&f, "busy.tokens@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..TOKENS {
        let new = NewAccessToken {
            kind: TokenKind::Api,
            label: "ci".into(),
            scopes: vec![Scope::CreditsRead],
            expires_in_days: None,
        };
        ids.push(
            tokens
                .create(&ctx, owner, session, new)
                .await
                .unwrap()
                .token_id,
        );
    }
    caught_up(&f, &runner, Follower::AccessTokens).await;

    // The rows thousands of rotations leave until a vacuum, which must not come now.
    sqlx::query("ALTER TABLE access_token_hashes SET (autovacuum_enabled = false)")
        .execute(f.db.pool())
        .await
        .unwrap();
    for id in &ids {
        sqlx::query(
            "INSERT INTO access_token_hashes (token_hash, token_id, account_id, valid_until) \
             SELECT 'dead-' || $1 || '-' || n, $1, $2, NULL FROM generate_series(1, $3) AS n",
        )
        .bind(id.to_string())
        .bind(owner.to_string())
        .bind(DEAD_ROWS)
        .execute(f.db.pool())
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM access_token_hashes WHERE token_hash LIKE 'dead-%'")
        .execute(f.db.pool())
        .await
        .unwrap();
    // What autovacuum's analyze would tell the planner.
    sqlx::query("ANALYZE access_token_hashes")
        .execute(f.db.pool())
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar(
        "SELECT CAST(pg_relation_size('access_token_hashes') / current_setting('block_size')::int AS BIGINT)",
    )
    .fetch_one(f.db.pool())
    .await
    .unwrap();
    assert!(pages >= 100, "only {pages} pages of dead rows");

    // The first round passes the dead rows once. Those that come after marked them (as
    // soon as no transaction on the server may still see them: a moment), not again.
    let mut blocks = Vec::new();
    for _ in 0..10 {
        fetched.lock().unwrap().clear();
        for id in &ids {
            tokens
                .rotate(&ctx, owner, session, *id, TokenFamily::Api, Duration::ZERO)
                .await
                .unwrap();
        }
        caught_up(&f, &runner, Follower::AccessTokens).await;
        blocks.push(fetched.lock().unwrap().iter().sum::<i64>());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        blocks[0] >= pages / 2 && blocks[1..].iter().any(|&n| n < 20 * TOKENS as i64),
        "blocks fetched by each round of rotations, of a table of {pages}: {blocks:?}"
    );
    // Still right: the secret in use, and the one it replaced (its grace over), no other.
    let hashes = dump(&f.db, "access_token_hashes", "token_hash").await;
    let in_use = hashes.iter().filter(|row| row[3].is_none()).count();
    assert!(hashes.len() == 2 * TOKENS && in_use == TOKENS, "{hashes:?}");
}
