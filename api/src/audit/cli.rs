//! `accounts audit events|state|verify`: the answers of the audit routes, built by the
//! same functions, printed as JSON or a table.

use super::{AuditError, Auditor, events, table};
use crate::cli::Outcome;
use crate::config::{AuditCommand, AuditVerifyArgs, OutputFormat};
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
        AuditCommand::Verify(args) => args.storage.clone(),
    };
    let storage = Storage::open(&storage_args).await?;
    let auditor = Auditor::new(
        storage.db.clone(),
        storage.log.clone(),
        storage.codec.clone(),
    );
    let refused = |message: String| Outcome {
        stdout: format!("{}\n", serde_json::json!({"error": message})),
        exit_code: 2,
    };
    let answer = match command {
        AuditCommand::Verify(args) => {
            let outcome = verify(&storage, &args).await;
            storage.db.close().await;
            return outcome;
        }
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
            session_idle_timeout,
            ..
        } => {
            let as_of = match crate::routes::audit::as_of(as_of.as_deref()) {
                Ok(at) => at,
                Err(error) => return Ok(refused(error.to_string())),
            };
            auditor
                .with_session_idle_timeout(session_idle_timeout)
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

/// `accounts audit verify`: the chain as stored, checked against the log as stored. It
/// does not chain anything itself (the chainer of a running service does): events after
/// the head are reported as not chained yet.
async fn verify(storage: &Storage, args: &AuditVerifyArgs) -> anyhow::Result<Outcome> {
    let report =
        projections::chain::verify(&storage.db, storage.log.as_ref(), args.expect_head).await?;
    tracing::info!(
        ok = report.ok,
        "chain head {}:{} (publish it to anchor the chain)",
        report.head.position,
        report.head.hash.as_deref().unwrap_or("(missing)")
    );
    let stdout = match args.format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => chain_lines(&report),
    };
    Ok(Outcome {
        stdout,
        exit_code: if report.ok { 0 } else { 1 },
    })
}

/// The readable form of a chain verification.
fn chain_lines(report: &projections::chain::VerifyReport) -> String {
    let mut lines = vec![format!(
        "{}: {} events checked, {} not chained yet",
        if report.ok {
            "chain intact"
        } else {
            "CHAIN BROKEN"
        },
        report.events_checked,
        report
            .unchained
            .map_or_else(|| "?".to_owned(), |n| n.to_string()),
    )];
    lines.push(format!(
        "head: {}:{}",
        report.head.position,
        report.head.hash.as_deref().unwrap_or("(missing)")
    ));
    if let Some(broken) = &report.first_broken {
        lines.push(format!(
            "first broken link: position {} ({}{}): {}",
            broken.position,
            broken.stream.as_deref().unwrap_or("event gone"),
            broken
                .revision
                .map_or_else(String::new, |r| format!(" revision {r}")),
            broken.reason.as_str()
        ));
    }
    if let Some(anchor) = &report.anchor {
        lines.push(format!(
            "expected head {}:{}: {}",
            anchor.position,
            anchor.expected,
            if anchor.matches {
                "matches"
            } else {
                "DOES NOT MATCH"
            }
        ));
    }
    lines.join("\n") + "\n"
}
