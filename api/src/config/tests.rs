//! The command line parses as the README says.

use super::*;
use domain::access_token::Scope;
use domain::catalog::ApiPolicy;
use std::time::Duration;

#[test]
fn the_defaults_match_the_flags() {
    let parsed = Cli::try_parse_from(["accounts", "serve"]).unwrap();
    let Some(Command::Serve(args)) = parsed.command else {
        panic!()
    };
    let defaults = ServeArgs::default();
    // Only compare what the environment of the test run cannot change.
    if std::env::var_os("ACCOUNTS_SESSION_TTL").is_none() {
        assert_eq!(args.session_ttl, defaults.session_ttl);
    }
    if std::env::var_os("ACCOUNTS_SESSION_IDLE_TIMEOUT").is_none() {
        assert_eq!(args.session_idle_timeout, defaults.session_idle_timeout);
    }
    if std::env::var_os("ACCOUNTS_LISTEN").is_none() {
        assert_eq!(args.listen, defaults.listen);
    }
}

#[test]
fn durations_take_human_units() {
    let parsed = Cli::try_parse_from(["accounts", "serve", "--session-ttl", "12h"]).unwrap();
    let Some(Command::Serve(args)) = parsed.command else {
        panic!()
    };
    assert_eq!(args.session_ttl, Duration::from_secs(12 * 3600));
}

#[test]
fn the_sandbox_runs_only_on_the_embedded_default_unless_asked_for() {
    let parse = |extra: &[&str]| {
        let mut args = vec!["accounts", "serve"];
        args.extend(extra);
        let Some(Command::Serve(serve)) = Cli::try_parse_from(args).unwrap().command else {
            panic!()
        };
        serve.payments_provider()
    };
    if std::env::var_os("ACCOUNTS_PAYMENTS_PROVIDER").is_some()
        || std::env::var_os("DATABASE_URL").is_some()
    {
        return;
    }
    let postgres = ["--database-url", "postgres://db/accounts"];
    assert_eq!(parse(&[]), PaymentsProvider::Sandbox);
    assert_eq!(parse(&postgres), PaymentsProvider::None);
    let sandbox = [
        "--payments-provider",
        "sandbox",
        "--database-url",
        "postgres://db/a",
    ];
    assert_eq!(parse(&sandbox), PaymentsProvider::Sandbox);
    assert_eq!(
        parse(&["--payments-provider", "none"]),
        PaymentsProvider::None
    );
    assert!(Cli::try_parse_from(["accounts", "serve", "--payments-provider", "stripe"]).is_err());
}

#[test]
fn one_trusted_proxy_unless_told_otherwise() {
    if std::env::var_os("ACCOUNTS_TRUSTED_PROXIES").is_some() {
        return;
    }
    let parse = |extra: &[&str]| {
        let mut args = vec!["accounts", "serve"];
        args.extend(extra);
        Cli::try_parse_from(args).map(|cli| match cli.command {
            Some(Command::Serve(serve)) => serve.trusted_proxies(),
            _ => panic!(),
        })
    };
    assert_eq!(parse(&[]).unwrap(), 1);
    assert_eq!(parse(&["--trusted-proxies", "2"]).unwrap(), 2);
    assert!(parse(&["--trusted-proxies", "0"]).is_err());
}

#[test]
fn serve_flags_work_without_naming_serve() {
    let parsed = Cli::try_parse_from(["accounts", "--listen", "127.0.0.1:9000"]).unwrap();
    assert!(parsed.command.is_none());
    assert_eq!(parsed.serve.listen, "127.0.0.1:9000".parse().unwrap());
    let json = Cli::try_parse_from(["accounts", "migrate", "--log-format", "json"]).unwrap();
    assert_eq!(json.log_format, LogFormat::Json);
    assert!(matches!(json.command, Some(Command::Migrate(_))));
}

#[test]
fn help_says_what_the_program_is_and_shows_examples() {
    use clap::CommandFactory;
    let help = Cli::command().render_help().to_string();
    assert!(
        help.starts_with("accounts: the account-settings backend"),
        "{help}"
    );
    assert!(help.contains("Examples:"));
    let mut cli = Cli::command();
    for sub in cli.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        let help = sub.render_long_help().to_string();
        assert!(
            help.contains("Example"),
            "{} has no example",
            sub.get_name()
        );
    }
    let version = Cli::try_parse_from(["accounts", "--version"]).unwrap_err();
    assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    assert!(version.to_string().contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn blobs_stay_in_the_folder_unless_s3_is_chosen_with_all_it_needs() {
    let parse = |extra: &[&str]| {
        let mut args = vec!["accounts", "serve"];
        args.extend(extra);
        let Some(Command::Serve(serve)) = Cli::try_parse_from(args).unwrap().command else {
            panic!()
        };
        serve.blobs
    };
    if std::env::vars().any(|(name, _)| name.starts_with("ACCOUNTS_BLOB_")) {
        return;
    }
    assert_eq!(parse(&[]).blob_store, BlobStoreKind::Folder);
    assert!(parse(&[]).s3_settings().unwrap().is_none());

    let missing = parse(&["--blob-store", "s3", "--blob-s3-bucket", "avatars"])
        .s3_settings()
        .unwrap_err();
    assert!(
        missing.to_string().contains("--blob-s3-access-key-id"),
        "{missing}"
    );

    let settings = parse(&[
        "--blob-store",
        "s3",
        "--blob-s3-endpoint",
        "http://127.0.0.1:9000",
        "--blob-s3-bucket",
        "avatars",
        "--blob-s3-access-key-id",
        "AKID",
        "--blob-s3-secret-access-key",
        "secret",
        "--blob-s3-force-path-style",
    ])
    .s3_settings()
    .unwrap()
    .expect("S3 settings");
    assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(settings.region, "us-east-1");
    assert_eq!(settings.bucket, "avatars");
    assert_eq!(settings.access_key_id, "AKID");
    assert_eq!(settings.secret_access_key, "secret");
    assert!(settings.force_path_style);
}

#[test]
fn the_deployment_narrows_api_access_with_two_flags() {
    if std::env::var_os("ACCOUNTS_API_ACCESS").is_some()
        || std::env::var_os("ACCOUNTS_API_SCOPES").is_some()
    {
        return;
    }
    let parse = |extra: &[&str]| {
        let mut args = vec!["accounts", "serve"];
        args.extend(extra);
        Cli::try_parse_from(args).map(|cli| match cli.command {
            Some(Command::Serve(serve)) => serve.api_policy(),
            _ => panic!(),
        })
    };
    assert_eq!(parse(&[]).unwrap(), ApiPolicy::default());
    assert_eq!(ServeArgs::default().api_policy(), ApiPolicy::default());
    assert!(!parse(&["--api-access", "off"]).unwrap().access);
    assert_eq!(
        parse(&["--api-scopes", "credits:read,usage:read"])
            .unwrap()
            .scopes,
        Some(vec![Scope::CreditsRead, Scope::UsageRead])
    );
    let unknown = parse(&["--api-scopes", "credits:read,credits:write"]).unwrap_err();
    assert!(unknown.to_string().contains("credits:write"), "{unknown}");
    assert!(parse(&["--api-access", "maybe"]).is_err());
}

#[test]
fn metrics_get_a_listen_address_of_their_own_only_when_asked() {
    if std::env::var_os("ACCOUNTS_METRICS_LISTEN").is_some() {
        return;
    }
    let parse = |extra: &[&str]| {
        let mut args = vec!["accounts", "serve"];
        args.extend(extra);
        Cli::try_parse_from(args).map(|cli| match cli.command {
            Some(Command::Serve(serve)) => serve.metrics_listen,
            _ => panic!(),
        })
    };
    assert_eq!(parse(&[]).unwrap(), None);
    assert_eq!(ServeArgs::default().metrics_listen, None);
    assert_eq!(
        parse(&["--metrics-listen", "10.0.0.5:9100"]).unwrap(),
        Some("10.0.0.5:9100".parse().unwrap())
    );
    assert!(parse(&["--metrics-listen", "not an address"]).is_err());
    // Without naming `serve`, as every serve flag.
    let bare = Cli::try_parse_from(["accounts", "--metrics-listen", "127.0.0.1:9100"]).unwrap();
    assert_eq!(
        bare.serve.metrics_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    let shown = format!("{:?}", bare.serve);
    assert!(
        shown.contains("metrics_listen: Some(127.0.0.1:9100)"),
        "{shown}"
    );
}
