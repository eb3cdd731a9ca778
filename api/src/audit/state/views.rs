//! What the auditor's account state shows: the account, its sessions, credits,
//! subscription, invoices, tokens, provider keys and workspaces at an instant.

use domain::Timestamp;
use domain::access_token::TokenKind;
use domain::credits::SourceKind;
use domain::provider_key::{KeyStatus, Provider};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// The account at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountState {
    /// The account.
    pub account_id: Uuid,
    /// The instant, as asked (or now).
    #[schema(value_type = String, format = DateTime)]
    pub as_of: Timestamp,
    /// The log position of the last event folded (0: none).
    pub position: u64,
    /// Events folded.
    pub events: u64,
    /// Registered and not deleted then.
    pub registered: bool,
    /// Deleted by then.
    pub deleted: bool,
    /// Some of its events could not be opened (its key is destroyed): what they said is
    /// missing from this state.
    pub erased: bool,
    /// The profile.
    pub profile: ProfileState,
    /// The account had proved it holds its address.
    pub email_verified: bool,
    /// Two-factor authentication was on.
    pub totp_enabled: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Sessions live then (started, not revoked, not expired).
    pub sessions: Vec<SessionState>,
    /// The credit ledger.
    pub credits: CreditsState,
    /// The plan in force, if any.
    pub subscription: Option<SubscriptionState>,
    /// Invoices issued by then.
    pub invoices: Vec<InvoiceState>,
    /// API and CLI tokens live then.
    pub tokens: Vec<TokenState>,
    /// Each notification toggle, on or off.
    pub notifications: BTreeMap<String, bool>,
    /// Provider keys present (never their secret).
    #[schema(value_type = Vec<Object>)]
    pub provider_keys: Vec<ProviderKeyState>,
    /// Workspaces it was a member of, with its role.
    pub workspaces: Vec<WorkspaceState>,
    /// A Telegram chat was linked.
    pub telegram_linked: bool,
}

/// The profile at an instant.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ProfileState {
    /// The address (absent once erased).
    pub email: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The bio.
    pub bio: Option<String>,
    /// The creator profile was public.
    pub public_profile: bool,
    /// An avatar was set.
    pub has_avatar: bool,
    /// When it registered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub registered_at: Option<Timestamp>,
}

/// A session live at the instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionState {
    /// The session.
    pub session_id: Uuid,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// Its absolute expiry.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// e.g. "Firefox 128 on Linux" (absent once erased).
    pub device: Option<String>,
    /// Where from (absent once erased or unknown).
    pub location: Option<String>,
}

/// The credit ledger at an instant.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CreditsState {
    /// Credits that could be held or spent then (lots not expired by then).
    pub available: u64,
    /// Credits in lots without an expiry event (the read model's balance).
    pub balance: u64,
    /// Credits held by open holds.
    pub held: u64,
    /// Every lot with credits left or not.
    pub lots: Vec<LotState>,
}

/// A lot of credits at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LotState {
    /// The lot.
    pub lot_id: Uuid,
    /// Where from.
    #[schema(value_type = String)]
    pub source: SourceKind,
    /// Credits granted.
    pub amount: u64,
    /// Credits left.
    pub remaining: u64,
    /// When it stops counting.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// It counted then.
    pub usable: bool,
}

/// The plan at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionState {
    /// The plan.
    pub plan_id: String,
    /// End of the paid period.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub period_end: Option<Timestamp>,
    /// It ends at the period's end.
    pub cancel_at_period_end: bool,
    /// The plan the next period renews into, if not this one.
    pub scheduled_plan: Option<String>,
}

/// An invoice at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceState {
    /// The invoice.
    pub invoice_id: Uuid,
    /// Its number.
    pub number: String,
    /// Its total, in minor units of `currency`.
    pub total: i64,
    /// The currency.
    pub currency: String,
    /// Paid by then.
    pub paid: bool,
    /// When issued.
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
}

/// A token live at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenState {
    /// The token.
    pub token_id: Uuid,
    /// API or CLI.
    #[schema(value_type = String)]
    pub kind: Option<TokenKind>,
    /// Its end of life, if any.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// A provider key present at an instant.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderKeyState {
    /// The provider.
    pub provider: Provider,
    /// Its version (bumped by each save).
    pub version: u32,
    /// Its last verification.
    pub status: KeyStatus,
    /// When saved.
    pub updated_at: Timestamp,
}

/// A workspace membership at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkspaceState {
    /// The workspace.
    pub workspace_id: Uuid,
    /// Its name (absent once the workspace's key is destroyed).
    pub name: Option<String>,
    /// The account's role.
    pub role: String,
    /// Since when.
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: Timestamp,
}
