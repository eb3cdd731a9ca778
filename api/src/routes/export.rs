//! `GET /me/export`: a copy of the account's data for its holder (data portability): the
//! account's state now, folded as an auditor sees it, and every event of the account's own
//! streams, its personal fields opened and its secrets redacted. A workspace's events are
//! the workspace's (and its other members') and stay out; the state names the account's
//! workspaces and roles. The export is recorded (`DataExported`: the security log shows it
//! and a notice goes out) and streamed, since a long history does not fit one buffer.

use super::audit::{as_of, auditor};
use crate::audit::events::AuditedEvent;
use crate::audit::state::AccountState;
use crate::audit::{AccountEvents, Auditor};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::state::{Auth, Core};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use domain::{AccountId, StreamCategory};
use serde::Serialize;
use store::{GlobalPosition, RecordedEvent};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// Events serialised into one chunk of the body.
const EVENTS_PER_CHUNK: usize = 256;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new().routes(routes!(export))
}

/// What `GET /me/export` answers (streamed: the fields in this order).
#[derive(Debug, Serialize, ToSchema)]
pub struct DataExport {
    /// The account.
    pub account_id: Uuid,
    /// When the copy was taken (RFC 3339).
    pub exported_at: String,
    /// The account as its events describe it now.
    pub state: AccountState,
    /// Every event of the account's own streams, in log order.
    pub events: Vec<AuditedEvent>,
}

/// A copy of everything the account's events say, as one JSON document to keep: its
/// state now (profile, sessions, credits, plan, invoices, tokens, notification settings,
/// provider keys present, workspaces and roles) and every event of its own streams
/// (personal fields opened, secrets such as password hashes redacted). Needs a recent
/// proof (`POST /auth/reauthenticate`); the security log records it and the account gets
/// a notice.
#[utoipa::path(get, path = "/me/export", tag = "account", security(("session" = [])),
    responses(
        (status = 200, description = "The copy, as an attachment", body = DataExport),
        (status = 403, description = "`reauthentication_required`: prove the password (and code) again first", body = ErrorBody),
    ))]
pub async fn export(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<Response, ApiError> {
    let account = session.account_id;
    auth.accounts
        .record_data_export(&ctx.command(session.actor()), account, session.session_id)
        .await?;
    let auditor = auditor(&core);
    let exported_at = as_of(None)?;
    let state = auditor.state(account, exported_at).await?;
    let events = auditor
        .account_events(account, GlobalPosition::START)
        .await?;
    // Everything but the events, then the events as the body goes out.
    let mut head = serde_json::to_vec(&serde_json::json!({
        "account_id": account.0,
        "exported_at": exported_at.to_rfc3339(),
        "state": state,
    }))
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    head.pop();
    head.extend_from_slice(br#","events":["#);
    let chunks = Chunks {
        auditor,
        events,
        account,
        pending: head,
        first: true,
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(chunks, Chunks::next));
    let attachment = format!("attachment; filename=\"account-{}.json\"", account.0);
    Ok((
        [
            (CONTENT_TYPE, "application/json".to_owned()),
            (CONTENT_DISPOSITION, attachment),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// The body of an export, a chunk of events at a time.
struct Chunks {
    auditor: Auditor,
    events: AccountEvents,
    account: AccountId,
    /// Bytes written but not sent yet (the head, at first).
    pending: Vec<u8>,
    first: bool,
    done: bool,
}

impl Chunks {
    /// Whether `event` is the account's own: not a workspace's, nor sealed with another
    /// subject's key (a workspace's provider keys).
    fn own(&self, event: &RecordedEvent) -> bool {
        StreamCategory::of_stream(&event.stream) != Some(StreamCategory::Workspace)
            && event
                .metadata
                .data_subject
                .is_none_or(|subject| subject == self.account.0)
    }

    /// The next chunk; an error ends the body short, so no client takes a cut-off copy
    /// for a whole one.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.done {
            return None;
        }
        let mut written = 0;
        while written < EVENTS_PER_CHUNK {
            let recorded = match self.events.next().await {
                Ok(Some(recorded)) => recorded,
                Ok(None) => {
                    self.pending.extend_from_slice(b"]}");
                    self.done = true;
                    break;
                }
                Err(error) => return self.fail(error),
            };
            if !self.own(&recorded) {
                continue;
            }
            let audited = match self.auditor.audited(recorded).await {
                Ok(audited) => audited,
                Err(error) => return self.fail(error),
            };
            if !self.first {
                self.pending.push(b',');
            }
            self.first = false;
            if let Err(error) = serde_json::to_writer(&mut self.pending, &audited) {
                return self.fail(error);
            }
            written += 1;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.pending));
        Some((Ok(chunk), self))
    }

    fn fail(
        mut self,
        error: impl std::fmt::Display,
    ) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        tracing::error!(%error, "a data export failed midway");
        self.done = true;
        Some((Err(std::io::Error::other("the export failed")), self))
    }
}
