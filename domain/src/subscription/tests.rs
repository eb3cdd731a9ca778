use super::*;
use crate::testing::given;

const DAY: i64 = 86_400;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
}
fn plan(id: &str, price: i64, credits: u64, rank: u32) -> PlanTerms {
    PlanTerms {
        plan_id: id.into(),
        price: Money::new(price, "EUR"),
        credits,
        period_secs: 30 * DAY as u64,
        rank,
    }
}
fn starter() -> PlanTerms {
    plan("starter", 900, 500, 1)
}
fn creator() -> PlanTerms {
    plan("creator", 2900, 2000, 2)
}
fn started() -> SubscriptionEvent {
    SubscriptionEvent::SubscriptionStarted {
        terms: starter(),
        period_start: at(0),
        period_end: at(30 * DAY),
    }
}

#[test]
fn subscribing_starts_a_period() {
    given::<Subscription>([])
        .when(SubscriptionCommand::ChangePlan {
            terms: starter(),
            at: at(0),
        })
        .then([started()]);
}

#[test]
fn an_upgrade_applies_at_once_with_prorated_differences() {
    let state = given::<Subscription>([started()])
        .when(SubscriptionCommand::ChangePlan {
            terms: creator(),
            at: at(20 * DAY),
        })
        .then([SubscriptionEvent::PlanUpgraded {
            from_plan: "starter".into(),
            terms: creator(),
            at: at(20 * DAY),
            period_end: at(30 * DAY),
            // (2900 - 900) × 10/30 and (2000 - 500) × 10/30
            prorated_charge: Money::new(667, "EUR"),
            prorated_credits: 500,
        }]);
    assert_eq!(state.terms.unwrap().plan_id, "creator");
    assert_eq!(state.period_end, Some(at(30 * DAY)));
}

#[test]
fn a_downgrade_waits_for_the_end_of_the_period() {
    let upgraded = SubscriptionEvent::SubscriptionStarted {
        terms: creator(),
        period_start: at(0),
        period_end: at(30 * DAY),
    };
    let state = given::<Subscription>([upgraded.clone()])
        .when(SubscriptionCommand::ChangePlan {
            terms: starter(),
            at: at(DAY),
        })
        .then([SubscriptionEvent::PlanChangeScheduled {
            plan_id: "starter".into(),
            effective_at: at(30 * DAY),
            terms: Some(starter()),
        }]);
    assert_eq!(state.next_plan(), Some("starter"));
    given::<Subscription>([
        upgraded,
        SubscriptionEvent::PlanChangeScheduled {
            plan_id: "starter".into(),
            effective_at: at(30 * DAY),
            terms: None,
        },
    ])
    .when(SubscriptionCommand::Renew {
        next: starter(),
        at: at(30 * DAY),
    })
    .then([SubscriptionEvent::SubscriptionRenewed {
        terms: starter(),
        period_start: at(30 * DAY),
        period_end: at(60 * DAY),
    }]);
}

#[test]
fn a_cancel_keeps_access_until_the_period_ends_and_resume_undoes_it() {
    let cancelled = SubscriptionEvent::CancellationScheduled {
        effective_at: at(30 * DAY),
        at: at(DAY),
    };
    given::<Subscription>([started()])
        .when(SubscriptionCommand::Cancel { at: at(DAY) })
        .then([cancelled.clone()]);
    let state = given::<Subscription>([started(), cancelled.clone()])
        .when(SubscriptionCommand::Resume { at: at(2 * DAY) })
        .then([SubscriptionEvent::SubscriptionResumed { at: at(2 * DAY) }]);
    assert!(!state.cancel_at_period_end);
    given::<Subscription>([started(), cancelled.clone()])
        .when(SubscriptionCommand::Renew {
            next: starter(),
            at: at(29 * DAY),
        })
        .then([]);
    let state = given::<Subscription>([started(), cancelled.clone()])
        .when(SubscriptionCommand::Renew {
            next: starter(),
            at: at(31 * DAY),
        })
        .then([SubscriptionEvent::SubscriptionEnded { at: at(30 * DAY) }]);
    assert!(!state.is_active());
    given::<Subscription>([started(), cancelled])
        .when(SubscriptionCommand::Resume { at: at(30 * DAY) })
        .then_error(SubscriptionError::AlreadyEnded);
}

/// A cancelled subscription whose holder then picks a lower plan for the next period goes
/// on with that plan: the choice calls the cancellation off, as choosing the current or a
/// higher plan does (it was recorded, shown as scheduled, and the period still ended).
#[test]
fn a_downgrade_after_a_cancel_calls_the_cancel_off() {
    let started = SubscriptionEvent::SubscriptionStarted {
        terms: creator(),
        period_start: at(0),
        period_end: at(30 * DAY),
    };
    let cancelled = SubscriptionEvent::CancellationScheduled {
        effective_at: at(30 * DAY),
        at: at(DAY),
    };
    let state = given::<Subscription>([started, cancelled])
        .when(SubscriptionCommand::ChangePlan {
            terms: starter(),
            at: at(2 * DAY),
        })
        .then([
            SubscriptionEvent::SubscriptionResumed { at: at(2 * DAY) },
            SubscriptionEvent::PlanChangeScheduled {
                plan_id: "starter".into(),
                effective_at: at(30 * DAY),
                terms: Some(starter()),
            },
        ]);
    assert_eq!(
        state.decide(&SubscriptionCommand::Renew {
            next: starter(),
            at: at(30 * DAY),
        }),
        Ok(vec![SubscriptionEvent::SubscriptionRenewed {
            terms: starter(),
            period_start: at(30 * DAY),
            period_end: at(60 * DAY),
        }])
    );
    // The same downgrade asked again changes nothing more.
    given::<Subscription>(state_events_after_downgrade())
        .when(SubscriptionCommand::ChangePlan {
            terms: starter(),
            at: at(3 * DAY),
        })
        .then([]);
}

fn state_events_after_downgrade() -> Vec<SubscriptionEvent> {
    vec![
        SubscriptionEvent::SubscriptionStarted {
            terms: creator(),
            period_start: at(0),
            period_end: at(30 * DAY),
        },
        SubscriptionEvent::PlanChangeScheduled {
            plan_id: "starter".into(),
            effective_at: at(30 * DAY),
            terms: None,
        },
    ]
}

#[test]
fn renewal_is_due_only_at_the_end_of_the_period() {
    given::<Subscription>([started()])
        .when(SubscriptionCommand::Renew {
            next: starter(),
            at: at(30 * DAY - 1),
        })
        .then([]);
    given::<Subscription>([])
        .when(SubscriptionCommand::Renew {
            next: starter(),
            at: at(0),
        })
        .then([]);
}

#[test]
fn choosing_the_current_plan_calls_off_scheduled_changes() {
    given::<Subscription>([
        started(),
        SubscriptionEvent::CancellationScheduled {
            effective_at: at(30 * DAY),
            at: at(DAY),
        },
    ])
    .when(SubscriptionCommand::ChangePlan {
        terms: starter(),
        at: at(2 * DAY),
    })
    .then([SubscriptionEvent::SubscriptionResumed { at: at(2 * DAY) }]);
}

#[test]
fn ending_now_stops_renewals() {
    let state = given::<Subscription>([started()])
        .when(SubscriptionCommand::EndNow { at: at(DAY) })
        .then([SubscriptionEvent::SubscriptionEnded { at: at(DAY) }]);
    assert_eq!(
        state.decide(&SubscriptionCommand::Renew {
            next: starter(),
            at: at(31 * DAY)
        }),
        Ok(vec![])
    );
    given::<Subscription>([])
        .when(SubscriptionCommand::EndNow { at: at(0) })
        .then([]);
}

#[test]
fn cancelling_without_a_subscription_is_refused() {
    given::<Subscription>([])
        .when(SubscriptionCommand::Cancel { at: at(0) })
        .then_error(SubscriptionError::NotSubscribed);
}

/// The plan in force after `events`, folded as the read models fold it.
fn in_force<'a>(events: impl IntoIterator<Item = &'a SubscriptionEvent>) -> Option<String> {
    events
        .into_iter()
        .fold(None, |plan, event| match event.plan_in_force() {
            PlanInForce::Now(id) => Some(id.to_owned()),
            PlanInForce::Ended => None,
            PlanInForce::Unchanged => plan,
        })
}

#[test]
fn a_downgrade_or_a_cancellation_changes_the_plan_in_force_only_at_the_period_end() {
    let mut subscription = Subscription::default();
    let mut log = Vec::new();
    let mut run = |command: SubscriptionCommand| {
        let events = subscription.decide(&command).unwrap();
        for event in &events {
            subscription.evolve(event);
        }
        log.extend(events);
        in_force(&log)
    };
    assert_eq!(
        run(SubscriptionCommand::ChangePlan {
            terms: creator(),
            at: at(0)
        }),
        Some("creator".into())
    );
    assert_eq!(
        run(SubscriptionCommand::ChangePlan {
            terms: starter(),
            at: at(DAY)
        }),
        Some("creator".into()),
        "a downgrade waits"
    );
    assert_eq!(
        run(SubscriptionCommand::Renew {
            next: starter(),
            at: at(30 * DAY)
        }),
        Some("starter".into())
    );
    assert_eq!(
        run(SubscriptionCommand::ChangePlan {
            terms: creator(),
            at: at(31 * DAY)
        }),
        Some("creator".into()),
        "an upgrade applies at once"
    );
    assert_eq!(
        run(SubscriptionCommand::Cancel { at: at(32 * DAY) }),
        Some("creator".into()),
        "a cancelled plan runs to its period end"
    );
    assert_eq!(
        run(SubscriptionCommand::Renew {
            next: creator(),
            at: at(60 * DAY)
        }),
        None
    );
}

#[test]
fn a_scheduled_plan_that_left_the_catalog_renews_at_the_terms_it_was_chosen_at() {
    let mut state = Subscription::default();
    for event in [
        SubscriptionEvent::SubscriptionStarted {
            terms: creator(),
            period_start: at(0),
            period_end: at(30 * DAY),
        },
        SubscriptionEvent::PlanChangeScheduled {
            plan_id: "starter".into(),
            effective_at: at(30 * DAY),
            terms: Some(starter()),
        },
    ] {
        state.evolve(&event);
    }
    let nothing_listed = |_: &str| None;
    assert_eq!(state.next_terms(nothing_listed), Some(starter()));
    let mut repriced = starter();
    repriced.price = Money::new(1200, &repriced.price.currency);
    let listed = |id: &str| (id == "starter").then(|| repriced.clone());
    assert_eq!(
        state.next_terms(listed),
        Some(repriced.clone()),
        "the catalog's terms first"
    );
    // A change scheduled before terms were recorded: the current plan's, as before.
    state.scheduled_terms = None;
    assert_eq!(state.next_terms(nothing_listed), Some(creator()));
    // The current plan, listed or not.
    let mut current = Subscription::default();
    current.evolve(&SubscriptionEvent::SubscriptionStarted {
        terms: creator(),
        period_start: at(0),
        period_end: at(30 * DAY),
    });
    assert_eq!(current.next_terms(nothing_listed), Some(creator()));
    assert_eq!(Subscription::default().next_terms(nothing_listed), None);
}
