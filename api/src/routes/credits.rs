//! Credits: the balance card, the history, packs and plans for sale, and buying a pack.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, CurrentSession, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::state::{Core, Payments};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use domain::money::Money;
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(credits))
        .routes(routes!(transactions))
        .routes(routes!(purchase))
        .routes(routes!(packs))
        .routes(routes!(plans))
}

/// An amount of money in minor units.
#[derive(Debug, Serialize, ToSchema)]
pub struct MoneyView {
    /// Minor units (cents).
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
}

impl From<Money> for MoneyView {
    fn from(m: Money) -> Self {
        Self {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

/// A lot of credits.
#[derive(Debug, Serialize, ToSchema)]
pub struct LotView {
    /// Its id.
    pub lot_id: Uuid,
    /// signup_bonus, promotion, purchase or plan_allowance.
    pub source: String,
    /// Credits granted.
    pub amount: u64,
    /// Credits left.
    pub remaining: u64,
    /// When it stops counting (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// Lower is spent first.
    pub priority: i64,
}

/// The balance card.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditsView {
    /// Credits available now (held and expired credits excluded).
    pub balance: u64,
    /// Credits reserved by generations in progress.
    pub held: u64,
    /// Lots with credits left, in spending order.
    pub lots: Vec<LotView>,
}

/// The balance, holds and lots.
#[utoipa::path(get, path = "/me/credits", tag = "credits", security(("session" = [])),
    responses((status = 200, body = CreditsView),
        (status = 503, description = "`projection_lag`: the credits read model has not caught up with the account's latest change yet (it waits up to 10 s first); retry in a moment", body = ErrorBody)))]
pub async fn credits(
    State(core): State<Core>,
    session: CurrentSession,
) -> Result<Json<CreditsView>, ApiError> {
    credits_of(&core, session.account_id).await
}

/// Returns once the credits read model shows everything committed to `account`'s ledger.
/// Holds and settlements answer once committed (a client running generations need not
/// wait for the read model twice per generation); the reads of the ledger wait instead,
/// so a balance read after a spend shows it, on any node.
pub(crate) async fn ledger_shown(core: &Core, account: domain::AccountId) -> Result<(), ApiError> {
    core.shows_stream(
        Follower::Credits,
        &domain::StreamCategory::Credits.stream(account),
    )
    .await
}

/// The balance card of `account`, showing everything committed to its ledger. The hot
/// read of the API: where the log shares the read models' database, the card's statement
/// also says where the ledger ends, so a card read with the read model caught up (the
/// usual case) costs one round trip, and only a stale one is read again after the wait.
async fn fresh_balance_card(
    core: &Core,
    account: domain::AccountId,
) -> Result<projections::credits::BalanceCard, ApiError> {
    let now = core.clock.now();
    if !core.log.shares_read_model_database() {
        ledger_shown(core, account).await?;
        return Ok(core.cards.card(account, now).await?);
    }
    // Taken before the read: the card shows at least this much of the log.
    let applied = core.projections.applied(Follower::Credits);
    let card = core.cards.card(account, now).await?;
    match card.ledger_end {
        Some(end) if end > applied => {
            core.shown(Follower::Credits, end).await?;
            Ok(core.cards.card(account, now).await?)
        }
        _ => Ok(card),
    }
}

/// The balance card of `account` (also served by `/api/v1/credits`).
pub(crate) async fn credits_of(
    core: &Core,
    account: domain::AccountId,
) -> Result<Json<CreditsView>, ApiError> {
    let card = fresh_balance_card(core, account).await?;
    Ok(Json(CreditsView {
        balance: card.lots.iter().map(|l| l.remaining).sum(),
        held: card.held,
        lots: card
            .lots
            .into_iter()
            .map(|l| LotView {
                lot_id: l.lot_id,
                source: l.source,
                amount: l.amount,
                remaining: l.remaining,
                expires_at: l.expires_at.map(|e| e.to_rfc3339()),
                priority: l.priority,
            })
            .collect(),
    }))
}

/// A page of the history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Entries per page, 1 to 200 (50 by default).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; absent or empty for the first page.
    #[param(schema_with = patterns::schemas::cursor)]
    pub cursor: Option<String>,
}

/// One entry of the history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView {
    /// grant, hold, spend, release or expiry.
    pub kind: String,
    /// Credits.
    pub amount: u64,
    /// editor, generation, rendering or api.
    pub feature: Option<String>,
    /// The generation.
    pub generation_id: Option<String>,
    /// The source of a grant.
    pub source: Option<String>,
    /// The lot of a grant or expiry.
    pub lot_id: Option<String>,
    /// The API token that caused it.
    pub api_token_id: Option<String>,
    /// When (RFC 3339).
    pub occurred_at: String,
}

/// The history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionPage {
    /// Entries.
    pub transactions: Vec<TransactionView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A cursor as [`TransactionPage::next_cursor`] gives it: `<position>-<index>`, each 1 to
/// 19 digits (`patterns::CURSOR`).
fn parse_cursor(cursor: &str) -> Option<(u64, u64)> {
    let number = |text: &str| {
        (!text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (position, idx) = cursor.split_once('-')?;
    Some((number(position)?, number(idx)?))
}

/// Every grant, hold, spend, release and expiry, newest first.
#[utoipa::path(get, path = "/me/credits/transactions", tag = "credits", security(("session" = [])),
    params(HistoryQuery),
    responses((status = 200, body = TransactionPage),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody),
        (status = 503, description = "`projection_lag`: the credits read model has not caught up with the account's latest change yet (it waits up to 10 s first); retry in a moment", body = ErrorBody)))]
pub async fn transactions(
    State(core): State<Core>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<HistoryQuery>,
) -> Result<Json<TransactionPage>, ApiError> {
    transactions_of(&core, session.account_id, page).await
}

/// A page of `account`'s credit history (also served by `/api/v1/credits/transactions`).
pub(crate) async fn transactions_of(
    core: &Core,
    account: domain::AccountId,
    page: HistoryQuery,
) -> Result<Json<TransactionPage>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    // An empty cursor is the first page, as if none were given.
    let cursor = match page.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(text) => Some(
            parse_cursor(text)
                .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API gave"))?,
        ),
        None => None,
    };
    ledger_shown(core, account).await?;
    let rows = projections::credits::transactions(&core.db, account, cursor, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|r| format!("{}-{}", r.cursor.0, r.cursor.1))
        })
        .flatten();
    Ok(Json(TransactionPage {
        transactions: rows
            .into_iter()
            .map(|r| TransactionView {
                kind: r.kind,
                amount: r.amount,
                feature: r.feature,
                generation_id: r.generation_id,
                source: r.source,
                lot_id: r.lot_id,
                api_token_id: r.api_token_id,
                occurred_at: r.occurred_at.to_rfc3339(),
            })
            .collect(),
        next_cursor,
    }))
}

/// A credit pack for sale.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackView {
    /// Its id, for `POST /me/credits/purchases`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Credits.
    pub credits: u64,
    /// Price.
    pub price: MoneyView,
}

/// The credit packs for sale.
#[utoipa::path(get, path = "/credit-packs", tag = "credits", responses((status = 200, body = [PackView])))]
pub async fn packs(State(payments): State<Payments>) -> Json<Vec<PackView>> {
    let catalog = payments.billing.catalog();
    Json(
        catalog
            .packs
            .iter()
            .map(|p| PackView {
                id: p.id.clone(),
                name: p.name.clone(),
                credits: p.credits,
                price: catalog.money(p.price).into(),
            })
            .collect(),
    )
}

/// A subscription plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Its id, for `PUT /me/subscription`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Price per period.
    pub price: MoneyView,
    /// Allowance credits per period (they expire with it).
    pub credits_per_period: u64,
    /// Period length in days.
    pub period_days: u32,
}

/// The subscription plans.
#[utoipa::path(get, path = "/plans", tag = "billing", responses((status = 200, body = [PlanView])))]
pub async fn plans(State(payments): State<Payments>) -> Json<Vec<PlanView>> {
    let catalog = payments.billing.catalog();
    Json(
        catalog
            .plans
            .iter()
            .map(|p| PlanView {
                id: p.id.clone(),
                name: p.name.clone(),
                price: catalog.money(p.price).into(),
                credits_per_period: p.credits_per_period,
                period_days: p.period_days,
            })
            .collect(),
    )
}

/// `POST /me/credits/purchases`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PurchaseRequest {
    /// A pack of `GET /credit-packs` (the document lists the catalog's).
    pub pack_id: String,
}

/// A checkout to complete at the payment provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseResponse {
    /// The purchase.
    pub purchase_id: Uuid,
    /// Send the buyer here; the credits arrive when the provider confirms payment.
    pub checkout_url: String,
}

/// Starts buying a credit pack.
#[utoipa::path(post, path = "/me/credits/purchases", tag = "credits", security(("session" = [])),
    request_body = PurchaseRequest,
    responses(
        (status = 201, body = PurchaseResponse),
        (status = 409, description = "`too_many_pending_purchases`: the account has as many purchases waiting for payment as it may (`--max-pending-purchases`; an abandoned one stops counting after 24 hours)", body = ErrorBody),
        (status = 422, description = "`unknown_pack`: not a pack of the catalog", body = ErrorBody),
        (status = 502, description = "`payment_provider_unavailable`: the payment provider did not answer", body = ErrorBody),
        (status = 503, description = "`payments_unavailable`: no payment provider is configured", body = ErrorBody),
    ))]
pub async fn purchase(
    State(core): State<Core>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PurchaseRequest>,
) -> Result<(StatusCode, Json<PurchaseResponse>), ApiError> {
    let started = payments
        .billing
        .start_purchase(
            &ctx.command(session.actor()),
            session.account_id,
            &body.pack_id,
            &core.http.base_url(&headers),
        )
        .await?;
    core.visible(
        Visibility::ReadModel(Follower::Billing),
        Some(started.position),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(PurchaseResponse {
            purchase_id: started.purchase_id,
            checkout_url: started.checkout_url,
        }),
    ))
}
