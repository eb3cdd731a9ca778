//! Set-based batches and rebuilds: a credits rebuild ends with the rows the runner wrote,
//! failed and dead rebuilds leave nothing behind, token rotations and balance cards written
//! or read together match one at a time.

use super::*;
use commands::access_tokens::TokenFamily;
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
pub(super) async fn signed_up(f: &Fixture, email: &str) -> (AccountId, domain::SessionId) {
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
/// are those of one event at a time, with a token rotated twice and one three times in
/// one batch (the rotations taken into one, with the last one's grace), a
/// rotation with and without grace, a rotation then a revocation, and a rotation then
/// a password change revoking the account's tokens then rotations again (none of which
/// may bring a secret back).
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
    let theirs_too = tokens
        .create(&ctx, other, other_session, new())
        .await
        .unwrap()
        .token_id;
    let hour = Duration::from_secs(3600);
    let rotate = |id, grace| tokens.rotate(&ctx, owner, session, id, TokenFamily::Api, grace);
    rotate(ids[0], Duration::ZERO).await.unwrap();
    rotate(ids[1], hour).await.unwrap();
    tokens
        .rotate(&ctx, other, other_session, theirs, TokenFamily::Api, hour)
        .await
        .unwrap();
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
    // Rotations appended after that change (each checked before it committed, as under
    // a race): they issue nothing, once or twice in a run.
    for id in [theirs, theirs, theirs_too] {
        tokens
            .rotate(&ctx, other, other_session, id, TokenFamily::Api, hour)
            .await
            .unwrap();
    }
    rotate(ids[2], hour).await.unwrap();
    rotate(ids[2], Duration::ZERO).await.unwrap();
    let last_c = rotate(ids[2], hour).await.unwrap();
    rotate(ids[3], hour).await.unwrap();
    tokens.revoke(&ctx, owner, ids[3]).await.unwrap();
    let last_a = rotate(ids[0], hour).await.unwrap();

    let runner = f.runner(vec![Arc::new(
        projections::access_tokens::AccessTokensProjector::new(FieldSealer::new(
            f.codec.keys().clone(),
        )),
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
        "revoked by the password change after its rotation, and not revived by the later ones"
    );
    assert!(of(theirs_too).is_empty(), "not revived by a rotation");
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
        projections::access_tokens::AccessTokensProjector::new(FieldSealer::new(
            f.codec.keys().clone(),
        )),
    ))]);
    one_at_a_time.rebuild(Follower::AccessTokens).await.unwrap();
    assert_eq!(
        dump(&f.db, "access_token_hashes", "token_hash").await,
        hashes
    );
    // The same rows but for the sealed label (each seal is fresh), which opens the same.
    let sealer = FieldSealer::new(f.codec.keys().clone());
    let opened = |rows: Vec<Vec<Option<String>>>| {
        let sealer = sealer.clone();
        async move {
            let mut opened = Vec::new();
            for mut row in rows {
                let label = row[3].take().unwrap();
                let owner = uuid::Uuid::parse_str(row[1].as_deref().unwrap()).unwrap();
                let label = sealer.open_text(owner, "access_tokens.label", &label).await;
                opened.push((row, label.unwrap().unwrap()));
            }
            opened
        }
    };
    let again = dump(&f.db, "access_tokens", "token_id").await;
    assert_eq!(opened(again).await, opened(live).await);
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
        registrations_only: false,
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
        registrations_only: false,
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
