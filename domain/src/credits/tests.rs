//! given / when / then for the credit ledger.

use super::*;
use crate::Aggregate;
use crate::testing::given;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
}
fn lot(n: u128) -> Uuid {
    Uuid::from_u128(n)
}
fn granted(
    n: u128,
    amount: u64,
    source: SourceKind,
    expires: Option<i64>,
    when: i64,
) -> CreditsEvent {
    CreditsEvent::CreditsGranted {
        lot_id: lot(n),
        grant_key: format!("grant-{n}"),
        amount,
        source,
        priority: source.priority(),
        expires_at: expires.map(at),
        granted_at: at(when),
    }
}
fn hold(generation: &str, amount: u64, when: i64) -> CreditsCommand {
    CreditsCommand::Hold {
        generation_id: generation.into(),
        feature: Feature::Generation,
        amount,
        hold_expires_at: at(when + 3600),
        max_open_holds: 100,
        api_token_id: None,
        at: at(when),
    }
}
fn held(generation: &str, amount: u64, allocations: Vec<Allocation>, when: i64) -> CreditsEvent {
    CreditsEvent::CreditsHeld {
        generation_id: generation.into(),
        feature: Feature::Generation,
        amount,
        allocations,
        held_at: at(when),
        hold_expires_at: at(when + 3600),
        api_token_id: None,
    }
}
fn alloc(n: u128, amount: u64) -> Allocation {
    Allocation {
        lot_id: lot(n),
        amount,
    }
}
fn settle(generation: &str, amount: u64, when: i64) -> CreditsCommand {
    CreditsCommand::Settle {
        generation_id: generation.into(),
        amount,
        api_token_id: None,
        at: at(when),
    }
}
fn release(generation: &str, reason: ReleaseReason, when: i64) -> CreditsCommand {
    CreditsCommand::Release {
        generation_id: generation.into(),
        reason,
        api_token_id: None,
        at: at(when),
    }
}

#[test]
fn a_grant_is_made_once_per_key() {
    let state = given::<CreditLedger>([])
        .when(CreditsCommand::Grant {
            lot_id: lot(1),
            grant_key: "grant-1".into(),
            amount: 100,
            source: SourceKind::Purchase,
            expires_at: None,
            at: at(0),
        })
        .then([granted(1, 100, SourceKind::Purchase, None, 0)]);
    assert_eq!(state.available(at(1)), 100);
    given::<CreditLedger>([granted(1, 100, SourceKind::Purchase, None, 0)])
        .when(CreditsCommand::Grant {
            lot_id: lot(2),
            grant_key: "grant-1".into(),
            amount: 100,
            source: SourceKind::Purchase,
            expires_at: None,
            at: at(5),
        })
        .then([]);
}

#[test]
fn holds_take_from_lots_by_priority_then_soonest_expiry_then_oldest() {
    let history = [
        granted(1, 50, SourceKind::Purchase, None, 0),
        granted(2, 30, SourceKind::PlanAllowance, Some(9000), 1),
        granted(3, 20, SourceKind::PlanAllowance, Some(5000), 2),
        granted(4, 10, SourceKind::Promotion, Some(8000), 3),
        granted(5, 10, SourceKind::Purchase, None, 4),
    ];
    given::<CreditLedger>(history)
        .when(hold("g1", 75, 10))
        .then([held(
            "g1",
            75,
            vec![alloc(4, 10), alloc(3, 20), alloc(2, 30), alloc(1, 15)],
            10,
        )]);
}

#[test]
fn expired_lots_do_not_count() {
    let history = [
        granted(1, 50, SourceKind::Promotion, Some(100), 0),
        granted(2, 20, SourceKind::Purchase, None, 0),
    ];
    given::<CreditLedger>(history.clone())
        .when(hold("g1", 30, 100))
        .then_error(CreditsError::InsufficientCredits {
            available: 20,
            requested: 30,
        });
    given::<CreditLedger>(history)
        .when(hold("g1", 30, 99))
        .then([held("g1", 30, vec![alloc(1, 30)], 99)]);
}

#[test]
fn the_balance_never_goes_below_zero() {
    given::<CreditLedger>([
        granted(1, 10, SourceKind::Purchase, None, 0),
        held("g1", 8, vec![alloc(1, 8)], 1),
    ])
    .when(hold("g2", 3, 2))
    .then_error(CreditsError::InsufficientCredits {
        available: 2,
        requested: 3,
    });
}

#[test]
fn settling_spends_the_actual_amount_and_returns_the_rest() {
    let state = given::<CreditLedger>([
        granted(1, 10, SourceKind::Promotion, None, 0),
        granted(2, 100, SourceKind::Purchase, None, 0),
        held("g1", 40, vec![alloc(1, 10), alloc(2, 30)], 1),
    ])
    .when(settle("g1", 25, 2))
    .then([CreditsEvent::CreditsSpent {
        generation_id: "g1".into(),
        feature: Feature::Generation,
        amount: 25,
        spent: vec![alloc(1, 10), alloc(2, 15)],
        released: vec![alloc(2, 15)],
        at: at(2),
        api_token_id: None,
    }]);
    assert_eq!(state.available(at(3)), 85);
    assert_eq!(state.held(), 0);
}

#[test]
fn a_retried_settle_charges_once_and_a_different_one_conflicts() {
    let history = [
        granted(1, 100, SourceKind::Purchase, None, 0),
        held("g1", 40, vec![alloc(1, 40)], 1),
        CreditsEvent::CreditsSpent {
            generation_id: "g1".into(),
            feature: Feature::Generation,
            amount: 25,
            spent: vec![alloc(1, 25)],
            released: vec![alloc(1, 15)],
            at: at(2),
            api_token_id: None,
        },
    ];
    given::<CreditLedger>(history.clone())
        .when(settle("g1", 25, 3))
        .then([]);
    given::<CreditLedger>(history.clone())
        .when(settle("g1", 26, 3))
        .then_error(CreditsError::GenerationConflict);
    given::<CreditLedger>(history.clone())
        .when(release("g1", ReleaseReason::Failed, 3))
        .then_error(CreditsError::AlreadyClosed("completed"));
    // Held again once completed: refused, not answered as held.
    given::<CreditLedger>(history.clone())
        .when(hold("g1", 40, 4))
        .then_error(CreditsError::AlreadyClosed("completed"));
    given::<CreditLedger>(history)
        .when(hold("g1", 41, 4))
        .then_error(CreditsError::GenerationConflict);
}

#[test]
fn a_failed_generation_releases_everything_once() {
    let history = [
        granted(1, 100, SourceKind::Purchase, None, 0),
        held("g1", 40, vec![alloc(1, 40)], 1),
    ];
    let released = CreditsEvent::HoldReleased {
        generation_id: "g1".into(),
        feature: Feature::Generation,
        reason: ReleaseReason::Failed,
        released: vec![alloc(1, 40)],
        at: at(2),
        api_token_id: None,
    };
    let state = given::<CreditLedger>(history.clone())
        .when(release("g1", ReleaseReason::Failed, 2))
        .then([released.clone()]);
    assert_eq!(state.available(at(3)), 100);
    let mut after = history.to_vec();
    after.push(released);
    given::<CreditLedger>(after.clone())
        .when(release("g1", ReleaseReason::Failed, 3))
        .then([]);
    given::<CreditLedger>(after.clone())
        .when(settle("g1", 10, 3))
        .then_error(CreditsError::AlreadyClosed("released"));
    given::<CreditLedger>(after)
        .when(hold("g1", 40, 4))
        .then_error(CreditsError::AlreadyClosed("released"));
}

#[test]
fn holds_time_out_only_after_their_deadline_and_then_cannot_be_settled() {
    let history = [
        granted(1, 100, SourceKind::Purchase, None, 0),
        held("g1", 40, vec![alloc(1, 40)], 0),
    ];
    given::<CreditLedger>(history.clone())
        .when(release("g1", ReleaseReason::TimedOut, 3599))
        .then([]);
    given::<CreditLedger>(history.clone())
        .when(settle("g1", 10, 3600))
        .then_error(CreditsError::HoldExpired);
    given::<CreditLedger>(history)
        .when(release("g1", ReleaseReason::TimedOut, 3600))
        .then([CreditsEvent::HoldReleased {
            generation_id: "g1".into(),
            feature: Feature::Generation,
            reason: ReleaseReason::TimedOut,
            released: vec![alloc(1, 40)],
            at: at(3600),
            api_token_id: None,
        }]);
}

#[test]
fn unknown_generations_cannot_be_settled_or_failed() {
    given::<CreditLedger>([])
        .when(settle("nope", 1, 0))
        .then_error(CreditsError::UnknownGeneration);
    given::<CreditLedger>([])
        .when(release("nope", ReleaseReason::Failed, 0))
        .then_error(CreditsError::UnknownGeneration);
}

#[test]
fn a_lot_expires_what_is_left_and_held_credits_returned_later_expire_too() {
    let history = [
        granted(1, 100, SourceKind::Promotion, Some(100), 0),
        held("g1", 30, vec![alloc(1, 30)], 1),
    ];
    given::<CreditLedger>(history.clone())
        .when(CreditsCommand::Expire {
            lot_id: lot(1),
            at: at(99),
        })
        .then([]);
    let expired = CreditsEvent::CreditsExpired {
        lot_id: lot(1),
        amount: 70,
        at: at(100),
    };
    let state = given::<CreditLedger>(history.clone())
        .when(CreditsCommand::Expire {
            lot_id: lot(1),
            at: at(100),
        })
        .then([expired.clone()]);
    assert_eq!(state.balance(), 0);
    assert_eq!(state.held(), 30);

    let mut later = history.to_vec();
    later.push(expired);
    later.push(CreditsEvent::HoldReleased {
        generation_id: "g1".into(),
        feature: Feature::Generation,
        reason: ReleaseReason::Failed,
        released: vec![alloc(1, 30)],
        at: at(200),
        api_token_id: None,
    });
    let state = given::<CreditLedger>(later)
        .when(CreditsCommand::Expire {
            lot_id: lot(1),
            at: at(201),
        })
        .then([CreditsEvent::CreditsExpired {
            lot_id: lot(1),
            amount: 30,
            at: at(201),
        }]);
    assert_eq!(state.available(at(202)), 0);
}

#[test]
fn zero_amounts_are_refused() {
    given::<CreditLedger>([])
        .when(hold("g", 0, 0))
        .then_error(CreditsError::InvalidAmount);
}

#[test]
fn open_holds_are_capped_and_closed_or_timed_out_ones_do_not_count() {
    let capped = |generation: &str, when: i64| match hold(generation, 10, when) {
        CreditsCommand::Hold {
            generation_id,
            feature,
            amount,
            hold_expires_at,
            api_token_id,
            at,
            ..
        } => CreditsCommand::Hold {
            generation_id,
            feature,
            amount,
            hold_expires_at,
            max_open_holds: 2,
            api_token_id,
            at,
        },
        other => other,
    };
    let history = vec![
        granted(1, 1000, SourceKind::Purchase, None, 0),
        held("a", 10, vec![alloc(1, 10)], 1),
        held("b", 10, vec![alloc(1, 10)], 2),
    ];
    given::<CreditLedger>(history.clone())
        .when(capped("c", 3))
        .then_error(CreditsError::TooManyOpenHolds { max: 2 });
    // A retried hold is not a new one.
    given::<CreditLedger>(history.clone())
        .when(capped("b", 3))
        .then([]);
    // Once one is settled, there is room again.
    let settled = given::<CreditLedger>(history.clone())
        .when(settle("a", 5, 3))
        .then([CreditsEvent::CreditsSpent {
            generation_id: "a".into(),
            feature: Feature::Generation,
            amount: 5,
            spent: vec![alloc(1, 5)],
            released: vec![alloc(1, 5)],
            at: at(3),
            api_token_id: None,
        }]);
    assert_eq!(settled.open_holds(at(3)), 1);
    // Holds past their deadline (released by the scheduler soon) no longer count.
    given::<CreditLedger>(history)
        .when(capped("c", 3602))
        .then([CreditsEvent::CreditsHeld {
            generation_id: "c".into(),
            feature: Feature::Generation,
            amount: 10,
            allocations: vec![alloc(1, 10)],
            held_at: at(3602),
            hold_expires_at: at(3602 + 3600),
            api_token_id: None,
        }]);
}

#[test]
fn a_snapshot_restores_the_same_ledger_and_keeps_deciding_alike() {
    let events = [
        granted(1, 10, SourceKind::Promotion, Some(500), 0),
        granted(2, 100, SourceKind::Purchase, None, 0),
        held("g1", 40, vec![alloc(1, 10), alloc(2, 30)], 1),
        held("g2", 5, vec![alloc(2, 5)], 2),
    ];
    let mut ledger = CreditLedger::from_events(&events);
    for event in ledger.decide(&settle("g1", 25, 3)).expect("settles") {
        ledger.evolve(&event);
    }
    assert_eq!(CreditLedger::SNAPSHOT_VERSION, Some(1));
    let snapshot = ledger.to_snapshot().expect("the ledger is snapshotted");
    let restored = CreditLedger::from_snapshot(snapshot).expect("restores");
    assert_eq!(restored, ledger);
    // The restored ledger refuses and accepts exactly what the original does.
    assert_eq!(
        restored.decide(&settle("g1", 25, 4)),
        ledger.decide(&settle("g1", 25, 4))
    );
    assert_eq!(
        restored.decide(&hold("g3", 80, 5)),
        ledger.decide(&hold("g3", 80, 5))
    );
    assert!(CreditLedger::from_snapshot(serde_json::json!({"lots": 7})).is_none());
}

#[test]
fn a_copy_shares_the_history_and_changing_it_leaves_the_original_alone() {
    let mut events = vec![granted(1, 10_000, SourceKind::Purchase, None, 0)];
    let mut ledger = CreditLedger::from_events(&events);
    for n in 0..200 {
        let generation = format!("g{n}");
        for command in [hold(&generation, 5, n), settle(&generation, 5, n)] {
            for event in ledger.decide(&command).expect("fits") {
                ledger.evolve(&event);
                events.push(event);
            }
        }
    }
    let original = ledger.clone();
    // The executor copies the state for every command: the copy must not duplicate what
    // the ledger keeps of every generation it closed.
    assert!(ledger.closed.ptr_eq(&original.closed));
    assert!(ledger.lots.ptr_eq(&original.lots));
    for event in ledger.decide(&hold("g-new", 5, 300)).expect("fits") {
        ledger.evolve(&event);
    }
    assert_eq!(original, CreditLedger::from_events(&events));
    assert_eq!(original.closed.len(), 200);
    assert_eq!(ledger.holds.len(), 1);
    assert!(original.holds.is_empty());
}
