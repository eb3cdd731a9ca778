//! The audit index answers as the reference selector does: for every account, the same
//! events in the same order, over a history that joins, leaves and deletes a workspace,
//! starts a purchase, issues an invoice, and seals and names accounts in other streams;
//! indexed a few events at a time, so that what earlier batches implied is read back from
//! the index's own tables.

use super::select::Selector;
use domain::AccountId;
use projections::audit_index::{AuditIndex, events_of};
use serde_json::{Value, json};
use store::testkit::{TestPostgres, TestSqlite};
use store::{
    Actor, Database, EventLog, ExpectedRevision, GlobalPosition, Metadata, NewEvent, RecordedEvent,
};
use uuid::Uuid;

fn new_event(event_type: &str, data: Value, subject: Option<Uuid>) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        data,
        metadata: Metadata {
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: "test".into(),
            },
            occurred_at: domain::Timestamp::from_unix_micros(1_800_000_000_000_000),
            idempotency_key: None,
            data_subject: subject,
        },
    }
}

async fn append(log: &dyn EventLog, stream: &str, event: NewEvent) {
    log.append(stream, ExpectedRevision::Any, vec![event])
        .await
        .unwrap();
}

/// What the reference selector admits for `account`, walking the whole log.
async fn selected(log: &dyn EventLog, account: Uuid) -> Vec<GlobalPosition> {
    let mut selector = Selector::new(AccountId(account));
    let all: Vec<RecordedEvent> = log.read_all(GlobalPosition::START, 10_000).await.unwrap();
    all.iter()
        .filter(|event| selector.admits(event))
        .map(|event| event.position)
        .collect()
}

async fn indexed(db: &Database, account: Uuid) -> Vec<GlobalPosition> {
    events_of(db, &account.to_string(), GlobalPosition::START, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|at| at.position)
        .collect()
}

async fn the_index_answers_as_the_selector(url: &str) {
    let db = Database::connect(url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    let index = AuditIndex::new(db.clone(), log.clone());
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (w, purchase, invoice) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let workspace = format!("workspace-{w}");
    let workspace_keys = format!("providerkeys-{w}");
    let some = json!({});
    let history: Vec<(String, NewEvent)> = vec![
        (
            format!("account-{a}"),
            new_event("AccountRegistered", some.clone(), Some(a)),
        ),
        (
            format!("account-{b}"),
            new_event("AccountRegistered", some.clone(), Some(b)),
        ),
        (
            format!("account-{c}"),
            new_event("AccountRegistered", some.clone(), Some(c)),
        ),
        (
            workspace.clone(),
            new_event(
                "WorkspaceCreated",
                json!({ "owner": a.to_string() }),
                Some(w),
            ),
        ),
        (
            workspace_keys.clone(),
            new_event("ProviderKeySaved", some.clone(), Some(w)),
        ),
        (
            workspace.clone(),
            new_event(
                "InvitationAccepted",
                json!({ "account_id": b.to_string() }),
                Some(w),
            ),
        ),
        (
            workspace.clone(),
            new_event("WorkspaceRenamed", some.clone(), Some(w)),
        ),
        (
            workspace.clone(),
            new_event(
                "MemberLeft",
                json!({ "account_id": a.to_string() }),
                Some(w),
            ),
        ),
        (
            workspace_keys.clone(),
            new_event("ProviderKeyRemoved", some.clone(), Some(w)),
        ),
        (
            format!("purchase-{purchase}"),
            new_event(
                "PurchaseStarted",
                json!({ "account_id": b.to_string() }),
                None,
            ),
        ),
        (
            workspace.clone(),
            new_event(
                "InvitationAccepted",
                json!({ "account_id": c.to_string() }),
                Some(w),
            ),
        ),
        (
            format!("purchase-{purchase}"),
            new_event("PurchasePaid", some.clone(), None),
        ),
        (
            "invoices-2026".to_owned(),
            new_event(
                "InvoiceIssued",
                json!({ "account_id": c.to_string(), "invoice_id": invoice.to_string() }),
                None,
            ),
        ),
        (
            workspace.clone(),
            new_event(
                "MemberRemoved",
                json!({ "account_id": b.to_string() }),
                Some(w),
            ),
        ),
        (
            format!("invoice-{invoice}"),
            new_event("InvoicePaid", some.clone(), None),
        ),
        (
            format!("accesstoken-{}", Uuid::new_v4()),
            new_event("AccessTokenCreated", some.clone(), Some(a)),
        ),
        (
            format!("campaign-{}", Uuid::new_v4()),
            new_event(
                "ClaimRedeemed",
                json!({ "account_id": b.to_string() }),
                None,
            ),
        ),
        (
            format!("credits-{c}"),
            new_event("CreditsGranted", some.clone(), None),
        ),
        (
            workspace.clone(),
            new_event("WorkspaceDeleted", some.clone(), Some(w)),
        ),
        (
            workspace.clone(),
            new_event("WorkspaceRenamed", some.clone(), Some(w)),
        ),
        (
            format!("providerkeys-{a}"),
            new_event("ProviderKeySaved", some.clone(), Some(a)),
        ),
        (
            "unknowncategory-1".to_owned(),
            new_event("Whatever", json!({ "account_id": a.to_string() }), None),
        ),
    ];
    // A few events per batch: links learnt earlier are read back from the index's tables.
    for (n, (stream, event)) in history.into_iter().enumerate() {
        append(&*log, &stream, event).await;
        if n % 3 == 2 {
            index.catch_up().await.unwrap();
        }
    }
    index.catch_up().await.unwrap();

    for account in [a, b, c, w] {
        let expected = selected(&*log, account).await;
        assert_eq!(indexed(&db, account).await, expected, "account {account}");
    }
    // Not vacuous: each account sees what only the membership rules give it.
    let types = |positions: Vec<GlobalPosition>| {
        let log = log.clone();
        async move {
            let all = log.read_all(GlobalPosition::START, 10_000).await.unwrap();
            all.into_iter()
                .filter(|e| positions.contains(&e.position))
                .map(|e| e.event_type)
                .collect::<Vec<_>>()
        }
    };
    let of_a = types(indexed(&db, a).await).await;
    assert_eq!(
        of_a.iter().filter(|t| *t == "WorkspaceRenamed").count(),
        1,
        "{of_a:?}"
    );
    assert!(of_a.contains(&"ProviderKeySaved".to_owned()), "{of_a:?}");
    assert!(
        !of_a.contains(&"ProviderKeyRemoved".to_owned()),
        "after leaving: {of_a:?}"
    );
    let of_b = types(indexed(&db, b).await).await;
    for expected in [
        "PurchasePaid",
        "ClaimRedeemed",
        "MemberRemoved",
        "ProviderKeyRemoved",
    ] {
        assert!(of_b.contains(&expected.to_owned()), "{expected}: {of_b:?}");
    }
    assert!(
        !of_b.contains(&"WorkspaceDeleted".to_owned()),
        "after removal: {of_b:?}"
    );
    let of_c = types(indexed(&db, c).await).await;
    for expected in [
        "InvoicePaid",
        "InvoiceIssued",
        "WorkspaceDeleted",
        "CreditsGranted",
    ] {
        assert!(of_c.contains(&expected.to_owned()), "{expected}: {of_c:?}");
    }

    // A second indexer over the same tables adds nothing twice.
    AuditIndex::new(db.clone(), log.clone())
        .catch_up()
        .await
        .unwrap();
    assert_eq!(indexed(&db, c).await, selected(&*log, c).await);
    db.close().await;
}

/// The running indexer follows the log on its own: events appended while it runs are
/// indexed without any audit read, and it stops when told.
#[tokio::test]
async fn the_running_indexer_follows_the_log() {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let indexer = std::sync::Arc::new(AuditIndex::new(db.clone(), log.clone()));
    let running = tokio::spawn(indexer.run(stopped));
    let account = Uuid::new_v4();
    for n in 0..3 {
        let event = new_event("AccountRegistered", json!({ "n": n }), Some(account));
        append(&*log, &format!("account-{account}"), event).await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while indexed(&db, account).await.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "not indexed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(indexed(&db, account).await, selected(&*log, account).await);
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("stops when told")
        .unwrap();
    db.close().await;
}

#[tokio::test]
async fn the_index_answers_as_the_selector_on_sqlite() {
    let file = TestSqlite::create();
    the_index_answers_as_the_selector(&file.url).await;
}

#[tokio::test]
async fn the_index_answers_as_the_selector_on_postgres() {
    let database = TestPostgres::create().await;
    the_index_answers_as_the_selector(&database.url).await;
}
