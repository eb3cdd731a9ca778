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
