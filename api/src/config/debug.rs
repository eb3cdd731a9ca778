//! `Debug` of the configuration without its secrets: the master key, the webhook secrets,
//! the Telegram bot token and the S3 access keys are left out, and URLs that may carry credentials (`DATABASE_URL`,
//! `ACCOUNTS_KEY_DATABASE_URL`, `KURRENTDB_URL`, `AMQP_URL`, `SMTP_URL`, `ACCOUNTS_BLOB_S3_ENDPOINT`) lose
//! their password and query. Each impl destructures its struct, so a field added later does
//! not compile until it is listed here.

use super::{BlobArgs, MailArgs, ServeArgs, StorageArgs, TelegramArgs};
use std::fmt;

/// Shown in place of a secret that is set.
const HIDDEN: &str = "<hidden>";

/// `url` without its password and query (`postgres://app:***@db:5432/accounts?***`); a
/// value that is not a URL is hidden whole.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return HIDDEN.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once(['?', '#']) {
        Some((path, _)) => format!("{path}?***"),
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn url(value: &Option<String>) -> Option<String> {
    value.as_deref().map(redacted_url)
}

fn secret(value: &Option<String>) -> Option<&'static str> {
    value.as_ref().map(|_| HIDDEN)
}

impl fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            data_dir,
            database_url,
            master_key,
            key_database_url,
            db_max_connections,
            event_store,
        } = self;
        f.debug_struct("StorageArgs")
            .field("data_dir", data_dir)
            .field("database_url", &url(database_url))
            .field("master_key", &secret(master_key))
            .field("key_database_url", &url(key_database_url))
            .field("db_max_connections", db_max_connections)
            .field("event_store", &url(event_store))
            .finish()
    }
}

impl fmt::Debug for BlobArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            blob_store,
            blob_s3_endpoint,
            blob_s3_region,
            blob_s3_bucket,
            blob_s3_access_key_id,
            blob_s3_secret_access_key,
            blob_s3_force_path_style,
            blob_s3_timeout,
        } = self;
        f.debug_struct("BlobArgs")
            .field("blob_store", blob_store)
            .field("blob_s3_endpoint", &url(blob_s3_endpoint))
            .field("blob_s3_region", blob_s3_region)
            .field("blob_s3_bucket", blob_s3_bucket)
            .field("blob_s3_access_key_id", &secret(blob_s3_access_key_id))
            .field(
                "blob_s3_secret_access_key",
                &secret(blob_s3_secret_access_key),
            )
            .field("blob_s3_force_path_style", blob_s3_force_path_style)
            .field("blob_s3_timeout", blob_s3_timeout)
            .finish()
    }
}

impl fmt::Debug for MailArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            amqp_url,
            amqp_prefix,
            smtp_url,
            mail_from,
            settings_url,
            credits_low_threshold,
            mail_retry_delay,
            mail_max_attempts,
            mail_concurrency,
            no_mail_workers,
            telegram,
        } = self;
        f.debug_struct("MailArgs")
            .field("amqp_url", &url(amqp_url))
            .field("amqp_prefix", amqp_prefix)
            .field("smtp_url", &url(smtp_url))
            .field("mail_from", mail_from)
            .field("settings_url", settings_url)
            .field("credits_low_threshold", credits_low_threshold)
            .field("mail_retry_delay", mail_retry_delay)
            .field("mail_max_attempts", mail_max_attempts)
            .field("mail_concurrency", mail_concurrency)
            .field("no_mail_workers", no_mail_workers)
            .field("telegram", telegram)
            .finish()
    }
}

impl fmt::Debug for TelegramArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            telegram_api_url,
            telegram_bot_token,
            telegram_bot_username,
            telegram_webhook_secret,
        } = self;
        f.debug_struct("TelegramArgs")
            .field("telegram_api_url", &redacted_url(telegram_api_url))
            .field("telegram_bot_token", &secret(telegram_bot_token))
            .field("telegram_bot_username", telegram_bot_username)
            .field("telegram_webhook_secret", &secret(telegram_webhook_secret))
            .finish()
    }
}

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            listen,
            metrics_listen,
            storage,
            blobs,
            session_ttl,
            session_idle_timeout,
            reauthentication_window,
            token_rate_limit,
            token_cache_ttl,
            session_cache_ttl,
            activity_flush_interval,
            client_ip_header,
            trusted_proxies,
            country_header,
            city_header,
            hash_concurrency,
            request_timeout,
            catalog,
            api_access,
            api_scopes,
            public_url,
            payments_provider,
            payments_webhook_secret,
            hold_timeout,
            scheduler_interval,
            storage_probe_interval,
            provider_base_urls,
            provider_key_verify_interval,
            mail,
            limits,
        } = self;
        f.debug_struct("ServeArgs")
            .field("listen", listen)
            .field("metrics_listen", metrics_listen)
            .field("storage", storage)
            .field("blobs", blobs)
            .field("session_ttl", session_ttl)
            .field("session_idle_timeout", session_idle_timeout)
            .field("reauthentication_window", reauthentication_window)
            .field("token_rate_limit", token_rate_limit)
            .field("token_cache_ttl", token_cache_ttl)
            .field("session_cache_ttl", session_cache_ttl)
            .field("activity_flush_interval", activity_flush_interval)
            .field("client_ip_header", client_ip_header)
            .field("trusted_proxies", trusted_proxies)
            .field("country_header", country_header)
            .field("city_header", city_header)
            .field("hash_concurrency", hash_concurrency)
            .field("request_timeout", request_timeout)
            .field("catalog", catalog)
            .field("api_access", api_access)
            .field("api_scopes", api_scopes)
            .field("public_url", public_url)
            .field("payments_provider", payments_provider)
            .field("payments_webhook_secret", &secret(payments_webhook_secret))
            .field("hold_timeout", hold_timeout)
            .field("scheduler_interval", scheduler_interval)
            .field("storage_probe_interval", storage_probe_interval)
            .field("provider_base_urls", provider_base_urls)
            .field("provider_key_verify_interval", provider_key_verify_interval)
            .field("mail", mail)
            .field("limits", limits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use clap::{CommandFactory, Parser};

    const MASTER_KEY: &str = "bWFzdGVyLWtleS1zZWNyZXQtMzItYnl0ZXMtbG9uZyE=";

    #[test]
    fn urls_lose_their_password_and_query() {
        assert_eq!(
            redacted_url("postgres://app:s3cret@db:5432/accounts?sslpassword=x"),
            "postgres://app:***@db:5432/accounts?***"
        );
        assert_eq!(
            redacted_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redacted_url("smtp://user:p@ss:word@relay:587"),
            "smtp://user:***@relay:587"
        );
        assert_eq!(
            redacted_url("postgres://db/accounts?password=s3cret"),
            "postgres://db/accounts?***"
        );
        assert_eq!(
            redacted_url("smtp://127.0.0.1:2525"),
            "smtp://127.0.0.1:2525"
        );
        assert_eq!(redacted_url("not a url with s3cret"), HIDDEN);
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let cli = Cli::try_parse_from([
            "accounts",
            "serve",
            "--database-url",
            "postgres://app:db-s3cret@db:5432/accounts",
            "--key-database-url",
            "postgres://keys:keys-s3cret@db:5432/keys",
            "--event-store",
            "kurrentdb://admin:kdb-s3cret@kdb:2113?tls=false",
            "--master-key",
            MASTER_KEY,
            "--amqp-url",
            "amqp://mq:amqp-s3cret@mq:5672/%2f",
            "--smtp-url",
            "smtp://mail:smtp-s3cret@relay:587",
            "--payments-webhook-secret",
            "whsec_webhook-s3cret",
            "--blob-store",
            "s3",
            "--blob-s3-endpoint",
            "https://objects.example:9000",
            "--blob-s3-bucket",
            "avatars",
            "--blob-s3-access-key-id",
            "AKIA-blob-s3cret-id",
            "--blob-s3-secret-access-key",
            "blob-s3cret-key",
            "--telegram-bot-token",
            "123456:tg-bot-s3cret",
            "--telegram-webhook-secret",
            "tg-hook-s3cret",
            "--telegram-bot-username",
            "studio_bot",
        ])
        .unwrap();
        let shown = format!("{cli:?} {cli:#?}");
        for secret in [
            "db-s3cret",
            "keys-s3cret",
            "kdb-s3cret",
            MASTER_KEY,
            "amqp-s3cret",
            "smtp-s3cret",
            "webhook-s3cret",
            "blob-s3cret",
            "tg-bot-s3cret",
            "tg-hook-s3cret",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(
            shown.contains("postgres://app:***@db:5432/accounts"),
            "{shown}"
        );
        assert!(shown.contains("master_key: Some(\"<hidden>\")"), "{shown}");
        assert!(
            shown.contains("kurrentdb://admin:***@kdb:2113?***"),
            "{shown}"
        );
        assert!(
            shown.contains("blob_s3_secret_access_key: Some(\"<hidden>\")"),
            "{shown}"
        );
        assert!(
            shown.contains("https://objects.example:9000") && shown.contains("avatars"),
            "{shown}"
        );
    }

    /// `--help` prints the value of a flag's variable when it is set, unless told not to:
    /// every flag that may hold a secret is told not to.
    #[test]
    fn help_never_shows_the_value_of_a_secret_variable() {
        let mut checked = Vec::new();
        let mut commands = vec![Cli::command()];
        while let Some(command) = commands.pop() {
            for arg in command.get_arguments() {
                let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
                    continue;
                };
                let secret = ["URL", "KEY", "SECRET", "PASSWORD"]
                    .iter()
                    .any(|word| env.contains(word))
                    // A bot's token (not `ACCOUNTS_TOKEN_RATE_LIMIT`).
                    || env.ends_with("_TOKEN");
                // The public and settings URLs are link bases, the verification interval
                // of provider keys a duration, the password reset limit a count: none is a
                // credential.
                let harmless = [
                    "ACCOUNTS_PUBLIC_URL",
                    "ACCOUNTS_SETTINGS_URL",
                    "ACCOUNTS_PROVIDER_KEY_VERIFY_INTERVAL",
                    "ACCOUNTS_PASSWORD_RESET_RATE_LIMIT",
                ]
                .contains(&env);
                if secret && !harmless {
                    assert!(arg.is_hide_env_values_set(), "{env} shown by --help");
                    checked.push(env.to_owned());
                }
            }
            commands.extend(command.get_subcommands().cloned());
        }
        for env in [
            "DATABASE_URL",
            "ACCOUNTS_KEY_DATABASE_URL",
            "KURRENTDB_URL",
            "ACCOUNTS_MASTER_KEY",
            "AMQP_URL",
            "SMTP_URL",
            "ACCOUNTS_PAYMENTS_WEBHOOK_SECRET",
            "ACCOUNTS_BLOB_S3_ACCESS_KEY_ID",
            "ACCOUNTS_BLOB_S3_SECRET_ACCESS_KEY",
            "ACCOUNTS_TELEGRAM_BOT_TOKEN",
            "ACCOUNTS_TELEGRAM_WEBHOOK_SECRET",
            "ACCOUNTS_TELEGRAM_API_URL",
        ] {
            assert!(checked.iter().any(|c| c == env), "{env} checked");
        }
    }
}
