use super::*;
use crate::access_token::Scope::{AccountRead, CreditsRead, GenerationsWrite, UsageRead};

const SHIPPED: &str = include_str!("../../../../config/catalog.toml");

fn parse(text: &str) -> Result<Catalog, String> {
    let catalog: Catalog = toml::from_str(text).map_err(|e| e.to_string())?;
    catalog.validate()?;
    Ok(catalog)
}

/// A catalog of two plans with the given extra lines for `[free]`, `basic` and `pro`.
fn catalog(free: &str, basic: &str, pro: &str) -> Result<Catalog, String> {
    parse(&format!(
        r#"
currency = "EUR"

[free]
{free}

[[plans]]
id = "basic"
name = "Basic"
price = 500
credits_per_period = 100
period_days = 30
rank = 1
{basic}

[[plans]]
id = "pro"
name = "Pro"
price = 2000
credits_per_period = 1000
period_days = 30
rank = 2
{pro}
"#
    ))
}

#[test]
fn the_shipped_catalog_keeps_api_access_with_every_scope_for_everyone() {
    let catalog = parse(SHIPPED).unwrap();
    let free = catalog.entitlements(None);
    assert_eq!(
        free,
        Entitlements {
            plan: None,
            seats: 3,
            api_access: true,
            scopes: Scope::ALL.to_vec(),
        }
    );
    for (plan, seats) in [("starter", 5), ("creator", 10), ("studio", 50)] {
        let paid = catalog.entitlements(Some(plan));
        assert_eq!(paid.plan.as_deref(), Some(plan));
        assert_eq!(paid.seats, seats, "{plan}");
        assert!(paid.api_access, "{plan}");
        assert_eq!(paid.scopes, Scope::ALL.to_vec(), "{plan}");
    }
}

#[test]
fn omitted_entitlements_are_one_seat_and_api_access_with_every_scope() {
    let catalog = parse(
        r#"
currency = "EUR"

[[plans]]
id = "basic"
name = "Basic"
price = 500
credits_per_period = 100
period_days = 30
rank = 1
"#,
    )
    .unwrap();
    assert_eq!(catalog.free, FreeTier::default());
    for plan in [None, Some("basic")] {
        let e = catalog.entitlements(plan);
        assert_eq!((e.seats, e.api_access), (1, true), "{plan:?}");
        assert_eq!(e.scopes, Scope::ALL.to_vec(), "{plan:?}");
    }
}

#[test]
fn each_plan_and_the_free_tier_say_their_seats_access_and_scopes() {
    let catalog = catalog(
        "seats = 2\napi_access = false",
        "seats = 5\nscopes = [\"usage:read\", \"credits:read\", \"credits:read\"]",
        "seats = 25",
    )
    .unwrap();
    assert_eq!(
        catalog.entitlements(None),
        Entitlements {
            plan: None,
            seats: 2,
            api_access: false,
            scopes: vec![],
        }
    );
    assert_eq!(
        catalog.entitlements(Some("basic")),
        Entitlements {
            plan: Some("basic".into()),
            seats: 5,
            api_access: true,
            // In the order of Scope::ALL, each once.
            scopes: vec![CreditsRead, UsageRead],
        }
    );
    let pro = catalog.entitlements(Some("pro"));
    assert_eq!((pro.seats, pro.scopes.len()), (25, 4));
    assert!(pro.offers(GenerationsWrite));
    assert!(!catalog.entitlements(Some("basic")).offers(GenerationsWrite));
}

#[test]
fn a_plan_gone_from_the_catalog_gets_the_free_tier_and_keeps_its_name() {
    let catalog = catalog("seats = 2\napi_access = false", "", "").unwrap();
    let gone = catalog.entitlements(Some("legacy"));
    assert_eq!(gone.plan.as_deref(), Some("legacy"));
    assert_eq!((gone.seats, gone.api_access), (2, false));
}

#[test]
fn an_unknown_scope_is_refused_at_load_naming_it_and_the_known_ones() {
    let error = catalog("", "scopes = [\"credits:write\"]", "").unwrap_err();
    for expected in ["credits:write", "account:read", "generations:write", "line"] {
        assert!(error.contains(expected), "{expected} in {error}");
    }
    let error = catalog("scopes = [\"admin\"]", "", "").unwrap_err();
    assert!(error.contains("admin"), "{error}");
}

#[test]
fn a_mistyped_entitlement_is_refused_at_load() {
    let error = catalog("", "api_acces = false", "").unwrap_err();
    assert!(error.contains("api_acces"), "{error}");
    let error = catalog("seat = 3", "", "").unwrap_err();
    assert!(error.contains("seat"), "{error}");
}

#[test]
fn api_access_without_a_scope_is_refused_and_without_access_no_scope_is_needed() {
    let error = catalog("", "", "scopes = []").unwrap_err();
    assert!(
        error.contains("plan pro") && error.contains("no scope"),
        "{error}"
    );
    let error = catalog("scopes = []", "", "").unwrap_err();
    assert!(error.contains("[free]"), "{error}");
    let catalog = catalog("api_access = false\nscopes = []", "", "").unwrap();
    assert!(!catalog.entitlements(None).api_access);
}

#[test]
fn the_deployment_switches_api_access_off_for_every_plan() {
    let catalog = parse(SHIPPED).unwrap().with_api_policy(ApiPolicy {
        access: false,
        scopes: None,
    });
    for plan in [None, Some("starter"), Some("studio")] {
        let e = catalog.entitlements(plan);
        assert!(!e.api_access, "{plan:?}");
        assert!(e.scopes.is_empty(), "{plan:?}");
        assert!(!e.offers(CreditsRead));
    }
    assert_eq!(catalog.entitlements(Some("studio")).seats, 50, "seats stay");
}

#[test]
fn the_deployment_s_scopes_intersect_the_plan_s() {
    let narrowed = |scopes: Vec<Scope>| {
        catalog(
            "scopes = [\"credits:read\", \"generations:write\"]",
            "api_access = false",
            "",
        )
        .unwrap()
        .with_api_policy(ApiPolicy {
            access: true,
            scopes: Some(scopes),
        })
    };
    let catalog = narrowed(vec![UsageRead, CreditsRead, AccountRead]);
    assert_eq!(catalog.entitlements(None).scopes, vec![CreditsRead]);
    assert_eq!(
        catalog.entitlements(Some("pro")).scopes,
        vec![AccountRead, CreditsRead, UsageRead]
    );
    // The deployment never widens a plan.
    assert!(!catalog.entitlements(Some("basic")).api_access);
    // Nothing left to offer is no API access.
    let none_left = narrowed(vec![UsageRead]).entitlements(None);
    assert_eq!((none_left.api_access, none_left.scopes.len()), (false, 0));
}

/// An offer whose lot would expire as it is granted is refused at load: every claim would
/// spend its budget and grant nothing (the ledger refuses such a lot).
#[test]
fn an_offer_whose_lot_lasts_no_day_is_refused_at_load() {
    let offer = |days: u32| {
        format!(
            "{SHIPPED}\n[[claims]]\nid = \"flash\"\nname = \"Flash\"\nkind = \"promotion\"\n\
             credits = 10\nlot_expires_after_days = {days}\n"
        )
    };
    assert!(parse(&offer(1)).is_ok());
    let refused = parse(&offer(0)).unwrap_err();
    assert!(refused.contains("flash"), "{refused}");
}
