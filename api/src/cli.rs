//! The `accounts` subcommands. Each returns what it prints and its exit code, so tests
//! run them in-process exactly as the binary does.

use crate::app::{App, AppOptions};
use crate::config::{
    CampaignArgs, Cli, Command, MailCommand, OperatorTokenCommand, RebuildArgs, ServeArgs,
    StorageArgs, WorkerArgs,
};
use crate::mail::{self, MailQueue};
use crate::storage::Storage;
use anyhow::Context;
use commands::operator_tokens::OperatorTokens;
use commands::{CommandContext, SystemClock};
use domain::operator::OperatorRole;
use projections::{Follower, ProjectionRunner};
use std::sync::Arc;
use std::time::Duration;
use store::EventDecoder;
use tokio::net::TcpListener;

/// What a subcommand printed, and how the process should exit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// For standard output.
    pub stdout: String,
    /// 0 on success.
    pub exit_code: i32,
}

impl Outcome {
    fn success(stdout: String) -> Self {
        Self {
            stdout,
            exit_code: 0,
        }
    }
}

/// Parses `args` (the program name first) and runs them, as the binary would.
pub async fn run_from<I, T>(args: I) -> anyhow::Result<Outcome>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run(<Cli as clap::Parser>::try_parse_from(args)?).await
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    // Boxed: every subcommand's future is part of the dispatcher's, which would otherwise
    // be inlined into each caller's (the binary's main, the CLI tests).
    Box::pin(dispatch(cli)).await
}

async fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Migrate(args)) => migrate(args).await,
        Some(Command::Rebuild(args)) => rebuild(args).await,
        Some(Command::Reconcile(args)) => reconcile(args).await,
        Some(Command::OperatorToken(command)) => operator_token(command).await,
        Some(Command::Notifier(args)) => notifier(args).await,
        Some(Command::Mailer(args)) => mailer(args).await,
        Some(Command::SendCampaign(args)) => send_campaign(args).await,
        Some(Command::Mail(MailCommand::DeadLetters(args))) => dead_letters(args).await,
        Some(Command::Audit(command)) => crate::audit::cli::run(command).await,
        Some(Command::Doctor(args)) => {
            let report = crate::doctor::check(&args).await;
            Ok(Outcome {
                stdout: report.render(),
                exit_code: i32::from(report.failed()),
            })
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<Outcome> {
    crate::allocator::return_freed_memory();
    let listen = args.listen;
    let app = App::build(AppOptions::from_args(args)).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "accounts is listening on http://{address} (API docs at /docs)");
    if let Some(metrics) = app.metrics_address() {
        tracing::info!(%metrics, "metrics for scrapers, without authentication, at http://{metrics}/metrics");
    }
    app.serve(listener, shutdown_signal()).await?;
    Ok(Outcome::default())
}

async fn migrate(args: StorageArgs) -> anyhow::Result<Outcome> {
    let storage = Storage::open(&args).await?;
    storage.runner(vec![]).prepare().await?;
    tracing::info!("migrations applied and read models ready");
    storage.db.close().await;
    Ok(Outcome::default())
}

async fn rebuild(args: RebuildArgs) -> anyhow::Result<Outcome> {
    let storage = Storage::open(&args.storage).await?;
    let projections = storage.runner(vec![]);
    projections.prepare().await?;
    let names = match args.projection.as_str() {
        "all" => projections.names(),
        name => vec![
            Follower::from_key(name)
                .filter(|f| projections.names().contains(f))
                .ok_or_else(|| anyhow::anyhow!("no read model is called {name:?}"))?,
        ],
    };
    let mut stdout = String::new();
    for name in names {
        let report = projections.rebuild(name).await?;
        let line = serde_json::json!({"projection": report.name.key(), "events": report.events, "position": report.position.0});
        stdout.push_str(&format!("{line}\n"));
    }
    storage.db.close().await;
    Ok(Outcome::success(stdout))
}

async fn reconcile(args: StorageArgs) -> anyhow::Result<Outcome> {
    let storage = Storage::open(&args).await?;
    storage.runner(vec![]).prepare().await?;
    let decoder: Arc<dyn EventDecoder> = Arc::new(storage.codec.clone());
    let report = workers::reconcile::reconcile(&storage.db, &storage.log, &decoder).await?;
    storage.db.close().await;
    Ok(Outcome {
        stdout: format!("{}\n", serde_json::to_string_pretty(&report)?),
        exit_code: if report.ok { 0 } else { 1 },
    })
}

async fn operator_token(command: OperatorTokenCommand) -> anyhow::Result<Outcome> {
    let storage_args = match &command {
        OperatorTokenCommand::Create { storage, .. }
        | OperatorTokenCommand::Revoke { storage, .. } => storage.clone(),
    };
    let storage = Storage::open(&storage_args).await?;
    let projections = storage.runner(vec![]);
    projections.prepare().await?;
    let tokens = OperatorTokens::new(storage.exec.clone(), Arc::new(SystemClock));
    let ctx = CommandContext::system("cli");
    let output = match command {
        OperatorTokenCommand::Create {
            role,
            label,
            expires_in_days,
            ..
        } => {
            let role: OperatorRole = role.parse().map_err(anyhow::Error::msg)?;
            let lifetime = Duration::from_secs(u64::from(expires_in_days) * 86_400);
            let created = tokens.create(&ctx, role, &label, lifetime).await?;
            serde_json::json!({
                "token_id": created.token_id,
                "role": role.as_str(),
                "token": created.token,
                "expires_at": created.expires_at.to_rfc3339(),
            })
        }
        OperatorTokenCommand::Revoke { token_id, .. } => {
            tokens.revoke(&ctx, token_id).await?;
            serde_json::json!({"token_id": token_id, "revoked": true})
        }
    };
    make_visible(&storage, &projections, Follower::OperatorTokens).await?;
    storage.db.close().await;
    Ok(Outcome::success(format!("{output}\n")))
}

async fn notifier(args: WorkerArgs) -> anyhow::Result<Outcome> {
    run_worker(args, "notifier", |storage, queue, args, stopping| {
        let notifier = mail::notifier(storage, queue, &args.mail);
        Ok(tokio::spawn(notifier.run(stopping)))
    })
    .await
}

async fn mailer(args: WorkerArgs) -> anyhow::Result<Outcome> {
    run_worker(args, "mailer", |storage, queue, args, stopping| {
        let mailer = mail::mailer(
            storage,
            &args.storage.data_dir,
            &args.mail,
            &args.public_url,
        )?;
        Ok(mail::spawn_mailer(queue, mailer, &args.mail, stopping))
    })
    .await
}

/// Runs one mail worker, started by `start`, until SIGINT or SIGTERM.
async fn run_worker(
    args: WorkerArgs,
    what: &str,
    start: impl FnOnce(
        &Storage,
        &MailQueue,
        &WorkerArgs,
        tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Outcome> {
    if args.mail.amqp_url.is_none() {
        anyhow::bail!(
            "accounts {what} needs --amqp-url (AMQP_URL): without a broker the notifier and \
             mailer run inside accounts serve"
        );
    }
    crate::allocator::return_freed_memory();
    let storage = Storage::open(&args.storage).await?;
    storage.runner(vec![]).prepare().await?;
    let queue = MailQueue::from_args(&storage, &args.mail);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let task = start(&storage, &queue, &args, stopping)?;
    tracing::info!("{what} running");
    shutdown_signal().await;
    let _ = stop.send(true);
    task.await?;
    storage.db.close().await;
    Ok(Outcome::default())
}

async fn send_campaign(args: CampaignArgs) -> anyhow::Result<Outcome> {
    let body = std::fs::read_to_string(&args.body_file)
        .with_context(|| format!("reading {}", args.body_file.display()))?;
    let storage = Storage::open(&args.storage).await?;
    storage.runner(vec![]).prepare().await?;
    let campaign = args.id.unwrap_or_else(uuid::Uuid::new_v4);
    let queue = MailQueue::from_args(&storage, &args.mail);
    let recipients = workers::campaign::publish(
        &storage.db,
        queue.publisher().as_ref(),
        campaign,
        &args.topic,
        &args.subject,
        &body,
    )
    .await?;
    storage.db.close().await;
    let output =
        serde_json::json!({"campaign_id": campaign, "topic": args.topic, "recipients": recipients});
    Ok(Outcome::success(format!("{output}\n")))
}

async fn dead_letters(args: StorageArgs) -> anyhow::Result<Outcome> {
    let storage = Storage::open(&args).await?;
    // Every letter: the operator's own terminal, not a response to bound.
    let (mut letters, mut page) = (Vec::new(), projections::Page::first(500));
    loop {
        let listed = workers::mail::queue::dead_letters(&storage.db, &page).await?;
        letters.extend(listed.items);
        match listed.next {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    storage.db.close().await;
    Ok(Outcome::success(format!(
        "{}\n",
        serde_json::to_string_pretty(&letters)?
    )))
}

/// Brings the read model `name` up to the end of the log before the CLI returns, so a
/// running service serves the change at once. The projection is run here too (runs are
/// guarded by their checkpoint, so two runners never apply an event twice); on PostgreSQL a
/// just-committed event may stay out of sight while an older transaction is still open, so
/// this retries until the checkpoint covers it.
async fn make_visible(
    storage: &Storage,
    projections: &ProjectionRunner,
    name: Follower,
) -> anyhow::Result<()> {
    let head = storage.log.committed_head().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        projections.catch_up(name).await?;
        match projections
            .wait_for(&[name], head, Duration::from_millis(100))
            .await
        {
            Ok(()) => return Ok(()),
            Err(_) if tokio::time::Instant::now() < deadline => {}
            Err(_) => {
                tracing::warn!(
                    projection = %name,
                    "the change is saved but its read model has not caught up yet; \
                     a running service will serve it once it does"
                );
                return Ok(());
            }
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
