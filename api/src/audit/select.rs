//! Which events of the log belong to an account, decided event by event in log order: the
//! reference the audit index (`projections::audit_index`), which decides it for every
//! account at once, is tested against (`index_tests.rs`).
//!
//! - Streams named after the account (`account-<id>`, `credits-<id>`, `subscription-<id>`,
//!   `checkouts-<id>`, `usage-<id>`, `preferences-<id>`, `editorprefs-<id>`,
//!   `providerkeys-<id>`, `telegram-<id>`, `activity-<id>`) belong to it whole.
//! - Events sealed with its data key (`data_subject`: its API and CLI tokens), and events
//!   that name it as their `account_id` (an invoice issued to it, a purchase it started, a
//!   claim it redeemed, its Telegram user), belong to it.
//! - A purchase stream whose `PurchaseStarted` names it, and an invoice stream whose
//!   `InvoiceIssued` names it, belong to it from then on.
//! - A workspace (`workspace-<id>`, and its provider keys `providerkeys-<workspace id>`)
//!   belongs to it **while it is a member**: from the event that made it one (creating the
//!   workspace, accepting an invitation) to the one that ended it (leaving, removal, the
//!   workspace's deletion), both included. What the workspace did before the account joined
//!   or after it left is not the account's history.

use domain::{AccountId, StreamCategory};
use serde_json::Value;
use std::collections::HashSet;
use store::RecordedEvent;

/// Follows the log and says, for each event, whether it belongs to one account. It must
/// see every event from the start of the log in order, since membership and purchases are
/// learnt from earlier events.
#[derive(Debug)]
pub struct Selector {
    account: AccountId,
    id: String,
    purchases: HashSet<String>,
    invoices: HashSet<String>,
    workspaces: HashSet<String>,
    ever_workspaces: Vec<String>,
}

fn names(data: &Value, field: &str, account: &str) -> bool {
    data.get(field).and_then(Value::as_str) == Some(account)
}

impl Selector {
    /// A selector of `account`'s events.
    pub fn new(account: AccountId) -> Self {
        Self {
            account,
            id: account.to_string(),
            purchases: HashSet::new(),
            invoices: HashSet::new(),
            workspaces: HashSet::new(),
            ever_workspaces: Vec::new(),
        }
    }

    /// The workspaces the account was a member of in the events seen so far (ids).
    pub fn workspaces_ever(&self) -> &[String] {
        &self.ever_workspaces
    }

    /// Whether `event` belongs to the account (and learns what it implies for later ones).
    pub fn admits(&mut self, event: &RecordedEvent) -> bool {
        let Some(category) = StreamCategory::of_stream(&event.stream) else {
            return false;
        };
        let id = category.id_in(&event.stream).unwrap_or_default();
        let data = &event.data;
        let account = self.id.clone();
        let mine = |field| names(data, field, &account);
        match category {
            StreamCategory::Workspace => {
                let member = self.workspaces.contains(id);
                match event.event_type.as_str() {
                    "WorkspaceCreated" if mine("owner") => self.join(id),
                    "InvitationAccepted" if mine("account_id") => self.join(id),
                    "MemberLeft" | "MemberRemoved" if mine("account_id") => {
                        self.workspaces.remove(id);
                        true
                    }
                    "WorkspaceDeleted" => {
                        self.workspaces.remove(id);
                        member
                    }
                    _ => member,
                }
            }
            StreamCategory::ProviderKeys => id == self.id || self.workspaces.contains(id),
            StreamCategory::Purchase => {
                if event.event_type == "PurchaseStarted" && mine("account_id") {
                    self.purchases.insert(event.stream.clone());
                }
                self.purchases.contains(&event.stream)
            }
            StreamCategory::InvoiceSeries => {
                let issued = mine("account_id");
                let invoice = data.get("invoice_id").and_then(Value::as_str);
                if let (true, Some(invoice)) = (issued, invoice) {
                    self.invoices
                        .insert(StreamCategory::Invoice.stream(invoice));
                }
                issued
            }
            StreamCategory::Invoice => self.invoices.contains(&event.stream),
            _ => {
                id == self.id
                    || event.metadata.data_subject == Some(self.account.0)
                    || mine("account_id")
            }
        }
    }

    fn join(&mut self, workspace: &str) -> bool {
        self.workspaces.insert(workspace.to_owned());
        if !self.ever_workspaces.iter().any(|w| w == workspace) {
            self.ever_workspaces.push(workspace.to_owned());
        }
        true
    }
}
