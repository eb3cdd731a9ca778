//! `accounts audit events|state`: the answers of the audit routes, built by the same
//! functions, printed as JSON or a table.

use super::{AuditError, Auditor, events, table};
use crate::cli::Outcome;
use crate::config::{AuditCommand, OutputFormat};
use crate::routes::audit::EventsParams;
use crate::storage::Storage;

/// `accounts audit events|state`: the same answers as the audit routes, printed as JSON
/// or a table; an unknown account or a malformed argument exits 2 with the reason.
#[tracing::instrument(skip_all)]
pub async fn run(command: AuditCommand) -> anyhow::Result<Outcome> {
    let storage_args = match &command {
        AuditCommand::Events { storage, .. } | AuditCommand::State { storage, .. } => {
            storage.clone()
        }
    };
    let storage = Storage::open(&storage_args).await?;
    let auditor = Auditor::new(storage.log.clone(), storage.codec.clone());
    let refused = |message: String| Outcome {
        stdout: format!("{}\n", serde_json::json!({"error": message})),
        exit_code: 2,
    };
    let answer = match command {
        AuditCommand::Events {
            account,
            from,
            to,
            cursor,
            limit,
            format,
            ..
        } => {
            let params = EventsParams {
                from,
                to,
                cursor,
                limit: Some(i64::from(limit)),
            };
            let query: events::EventsQuery = match params.query() {
                Ok(query) => query,
                Err(error) => return Ok(refused(error.to_string())),
            };
            auditor
                .events(domain::AccountId(account), query)
                .await
                .map(|page| match format {
                    OutputFormat::Json => json_text(&page),
                    OutputFormat::Table => table::events(&page),
                })
        }
        AuditCommand::State {
            account,
            as_of,
            format,
            ..
        } => {
            let as_of = match crate::routes::audit::as_of(as_of.as_deref()) {
                Ok(at) => at,
                Err(error) => return Ok(refused(error.to_string())),
            };
            auditor
                .state(domain::AccountId(account), as_of)
                .await
                .map(|state| match format {
                    OutputFormat::Json => json_text(&state),
                    OutputFormat::Table => table::state(&state),
                })
        }
    };
    storage.db.close().await;
    match answer {
        Ok(stdout) => Ok(Outcome {
            stdout,
            exit_code: 0,
        }),
        Err(AuditError::UnknownAccount) => Ok(refused("no account has this id".into())),
        Err(AuditError::Failed(message)) => Err(anyhow::anyhow!(message)),
    }
}

fn json_text(value: &impl serde::Serialize) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}
