//! A renewal takes the next plan from the state it is decided against: one decided again,
//! after another node's change to the subscription, renews into what that change chose.

use commands::billing::{Billing, subscription_stream};
use commands::credits::Credits;
use commands::payments::SandboxProvider;
use commands::{Clock, CommandContext, EventCodec, Executor, ManualClock};
use domain::AccountId;
use domain::catalog::Catalog;
use domain::money::Money;
use domain::subscription::{PlanTerms, Subscription, SubscriptionEvent};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::Database;
use store::testkit::{ProbedLog, TestSqlite};
use uuid::Uuid;
use vault::{DataKeys, MasterKey};

const DAY: u64 = 86_400;

/// Two plans: `creator` and, lower, `starter`.
fn catalog() -> Catalog {
    let plan = |id: &str, price: i64, rank: u32| {
        serde_json::json!({"id": id, "name": id, "price": price,
            "credits_per_period": 100, "period_days": 30, "rank": rank})
    };
    serde_json::from_value(serde_json::json!({
        "currency": "EUR",
        "plans": [plan("starter", 900, 1), plan("creator", 2900, 2)],
    }))
    .unwrap()
}

/// A downgrade another node committed while this node's renewal of the ended period was
/// on its way: the renewal, refused and decided again, renews into the downgrade's plan at
/// its price (it renewed into the plan it had loaded, dropping the downgrade).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_decided_again_renews_into_a_downgrade_made_meanwhile() {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    let codec = EventCodec::new(Arc::new(DataKeys::new(db.clone(), &MasterKey::generate())));
    let probed = ProbedLog::new(log.clone());
    let here = Executor::new(probed.clone(), codec.clone());
    let elsewhere = Executor::new(log.clone(), codec.clone());
    let clock = Arc::new(ManualClock::starting_now());
    let now = clock.now();
    let billing = Billing::new(
        here.clone(),
        Credits::new(here, clock.clone(), Duration::from_secs(600)),
        Arc::new(catalog()),
        Some(Arc::new(SandboxProvider)),
        clock.clone(),
    );
    let account = AccountId(Uuid::new_v4());
    let stream = subscription_stream(account);
    let ctx = CommandContext::system("test");
    let end = now.plus(Duration::from_secs(1));
    let creator = PlanTerms {
        plan_id: "creator".into(),
        price: Money::new(2900, "EUR"),
        credits: 100,
        period_secs: 30 * DAY,
        rank: 2,
    };
    let started = SubscriptionEvent::SubscriptionStarted {
        terms: creator,
        period_start: now,
        period_end: end,
    };
    let record = |event: SubscriptionEvent| {
        let (elsewhere, stream, ctx) = (elsewhere.clone(), stream.clone(), ctx.clone());
        async move {
            elsewhere
                .execute::<Subscription, _>(&stream, &ctx, None, now, |_| Ok(vec![event.clone()]))
                .await
                .unwrap();
        }
    };
    record(started).await;
    // The renewal is due once the period has ended; its append is held.
    clock.advance(Duration::from_secs(2));
    probed.hold_next.store(true, Ordering::SeqCst);
    let renewing = {
        let (billing, ctx) = (billing.clone(), ctx.clone());
        tokio::spawn(async move { billing.renew_due(&ctx, account).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while probed.appends.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewal never appended"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    record(SubscriptionEvent::PlanChangeScheduled {
        plan_id: "starter".into(),
        effective_at: end,
        terms: None,
    })
    .await;
    probed.gate.add_permits(1);
    renewing.await.unwrap().unwrap();

    let renewed = billing.subscription(account).await.unwrap();
    let terms = renewed.terms.expect("renewed");
    assert_eq!(terms.plan_id, "starter");
    assert_eq!(terms.price, Money::new(900, "EUR"));
    assert_eq!(renewed.scheduled_plan, None);
}

/// A downgrade to a plan the operator then took out of the catalog renews into that plan at
/// the terms it was chosen at (it renewed the current plan at its price, the downgrade
/// dropped).
#[tokio::test]
async fn a_downgrade_to_a_plan_since_delisted_renews_at_its_terms() {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    let codec = EventCodec::new(Arc::new(DataKeys::new(db.clone(), &MasterKey::generate())));
    let exec = Executor::new(log, codec);
    let clock = Arc::new(ManualClock::starting_now());
    let now = clock.now();
    let only_creator: Catalog = serde_json::from_value(serde_json::json!({
        "currency": "EUR",
        "plans": [{"id": "creator", "name": "creator", "price": 2900,
            "credits_per_period": 100, "period_days": 30, "rank": 2}],
    }))
    .unwrap();
    let billing = Billing::new(
        exec.clone(),
        Credits::new(exec.clone(), clock.clone(), Duration::from_secs(600)),
        Arc::new(only_creator),
        Some(Arc::new(SandboxProvider)),
        clock.clone(),
    );
    let account = AccountId(Uuid::new_v4());
    let end = now.plus(Duration::from_secs(1));
    let terms = |plan_id: &str, price: i64, rank: u32| PlanTerms {
        plan_id: plan_id.into(),
        price: Money::new(price, "EUR"),
        credits: 100,
        period_secs: 30 * DAY,
        rank,
    };
    let history = [
        SubscriptionEvent::SubscriptionStarted {
            terms: terms("creator", 2900, 2),
            period_start: now,
            period_end: end,
        },
        SubscriptionEvent::PlanChangeScheduled {
            plan_id: "starter".into(),
            effective_at: end,
            terms: Some(terms("starter", 900, 1)),
        },
    ];
    let ctx = CommandContext::system("test");
    exec.execute::<Subscription, _>(&subscription_stream(account), &ctx, None, now, |_| {
        Ok(history.to_vec())
    })
    .await
    .unwrap();
    clock.advance(Duration::from_secs(2));
    billing.renew_due(&ctx, account).await.unwrap();
    let renewed = billing.subscription(account).await.unwrap();
    assert_eq!(renewed.terms, Some(terms("starter", 900, 1)));
}
