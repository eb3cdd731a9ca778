//! Editor preferences: a change decided against the version its writer read.

use crate::clock::Clock;
use crate::error::{CommandError, Rejection};
use crate::executor::{CommandContext, Executor};
use domain::editor_preferences::{
    EditorPreferences, EditorPreferencesCommand, EditorPreferencesError,
};
use domain::{AccountId, Aggregate, StreamCategory};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use store::GlobalPosition;

impl From<EditorPreferencesError> for CommandError {
    fn from(e: EditorPreferencesError) -> Self {
        CommandError::rejected(Rejection::PreconditionFailed, "stale_version", e)
    }
}

/// Editor-preference commands.
#[derive(Clone)]
pub struct EditorPreferencesHandler {
    exec: Executor,
    clock: Arc<dyn Clock>,
}

impl EditorPreferencesHandler {
    /// Handlers over `exec`.
    pub fn new(exec: Executor, clock: Arc<dyn Clock>) -> Self {
        Self { exec, clock }
    }

    /// Sets `set` and resets `resets` if the preferences are still at `if_match`; returns
    /// the state after and where it committed (none when nothing changed).
    pub async fn change(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        if_match: u64,
        set: BTreeMap<String, Value>,
        resets: Vec<String>,
        schema_version: u32,
    ) -> Result<(EditorPreferences, Option<GlobalPosition>), CommandError> {
        let at = self.clock.now();
        let command = EditorPreferencesCommand::Change {
            if_match,
            set,
            resets,
            schema_version,
            at,
        };
        let stream = StreamCategory::EditorPreferences.stream(account.0);
        let executed = self
            .exec
            .execute::<EditorPreferences, _>(&stream, ctx, Some(account.0), at, |p| {
                Ok(p.decide(&command)?)
            })
            .await?;
        Ok((executed.state, executed.position))
    }
}
