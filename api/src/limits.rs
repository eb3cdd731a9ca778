//! The `serve` flags that bound what one client or account may cost the service: how often
//! an address may register or ask for password reset links, how long API tokens live, how
//! many tokens, open generation holds and pending purchases an account may have, and how
//! many avatars are decoded at once. Flattened into [`crate::config::ServeArgs`]; each is a flag and an environment
//! variable (see the README's table).

use clap::Args;
use commands::Clock;
use commands::access_tokens::TokenPolicy;
use commands::avatar::DecodeSlots;
use commands::rate_limit::{IpRateLimit, RateLimit};
use std::sync::Arc;
use std::time::Duration;

/// The lifetime of an API token created without one (shorter if `--api-token-max-days` is).
pub const DEFAULT_API_TOKEN_DAYS: u32 = 90;

/// How long an avatar upload waits for a decode slot before it is answered `busy`.
pub const AVATAR_SLOT_WAIT: Duration = Duration::from_secs(2);

/// Limits on expensive or accumulating work.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Registrations an hour from one client IP, counted on every node (429
    /// `too_many_registrations` beyond).
    #[arg(long, env = "ACCOUNTS_REGISTRATION_RATE_LIMIT", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub registration_rate_limit: u32,

    /// Password reset links asked for in an hour from one client IP, whatever the address,
    /// counted on every node (429 `too_many_password_resets` beyond).
    #[arg(long, env = "ACCOUNTS_PASSWORD_RESET_RATE_LIMIT", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub password_reset_rate_limit: u32,

    /// The longest lifetime of an API token, in days (a token created without
    /// `expires_in_days` lives 90 days, or this if shorter).
    #[arg(long, env = "ACCOUNTS_API_TOKEN_MAX_DAYS", default_value_t = 365,
        value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub api_token_max_days: u32,

    /// Live (unexpired, unrevoked) API and CLI tokens an account may have at once.
    #[arg(long, env = "ACCOUNTS_MAX_LIVE_TOKENS", default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_live_tokens: u32,

    /// Generation holds an account may have open at once.
    #[arg(long, env = "ACCOUNTS_MAX_OPEN_HOLDS", default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_open_holds: u32,

    /// Credit-pack purchases an account may have waiting for payment at once (an
    /// abandoned checkout stops counting after 24 hours).
    #[arg(long, env = "ACCOUNTS_MAX_PENDING_PURCHASES", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_purchases: u32,

    /// Avatar images decoded at once; an upload that finds none free within two seconds
    /// is answered 503 `busy`.
    #[arg(long, env = "ACCOUNTS_AVATAR_DECODE_CONCURRENCY", default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub avatar_decode_concurrency: u32,
}

impl Default for LimitArgs {
    /// The documented defaults.
    fn default() -> Self {
        Self {
            registration_rate_limit: 20,
            password_reset_rate_limit: 20,
            api_token_max_days: 365,
            max_live_tokens: 50,
            max_open_holds: 100,
            max_pending_purchases: 10,
            avatar_decode_concurrency: 2,
        }
    }
}

impl LimitArgs {
    /// The token limits, with the re-authentication window tokens are created within.
    pub fn token_policy(&self, reauthentication_window: Duration) -> TokenPolicy {
        TokenPolicy {
            api_default_days: DEFAULT_API_TOKEN_DAYS,
            api_max_days: self.api_token_max_days,
            max_live: self.max_live_tokens,
            reauthentication_window,
        }
    }

    /// The avatar decode slots.
    pub fn decode_slots(&self) -> DecodeSlots {
        DecodeSlots::new(self.avatar_decode_concurrency as usize, AVATAR_SLOT_WAIT)
    }

    /// The registration budget per client IP, in `db` (shared by every node), keyed by
    /// the IP hashed with `secret`.
    pub fn registrations(
        &self,
        db: store::Database,
        secret: [u8; 32],
        clock: Arc<dyn Clock>,
    ) -> IpRateLimit {
        per_ip_an_hour(
            "registration",
            self.registration_rate_limit,
            db,
            secret,
            clock,
        )
    }

    /// The per-client-IP budget of password reset requests (`--password-reset-rate-limit`
    /// an hour), shared by every node through `db`.
    pub fn password_resets(
        &self,
        db: store::Database,
        secret: [u8; 32],
        clock: Arc<dyn Clock>,
    ) -> IpRateLimit {
        per_ip_an_hour(
            "password_reset",
            self.password_reset_rate_limit,
            db,
            secret,
            clock,
        )
    }
}

/// `limit` requests of `name` an hour per client IP, in `db`, keyed by the IP hashed with
/// `secret`.
fn per_ip_an_hour(
    name: &'static str,
    limit: u32,
    db: store::Database,
    secret: [u8; 32],
    clock: Arc<dyn Clock>,
) -> IpRateLimit {
    let per_hour = RateLimit::per_period(name, limit, Duration::from_secs(3600), db, clock);
    IpRateLimit::new(per_hour, secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn the_defaults_match_the_flags() {
        let parsed = Only::try_parse_from(["accounts"]).unwrap().limits;
        let defaults = LimitArgs::default();
        // Only what the environment of the test run does not set.
        if std::env::var_os("ACCOUNTS_API_TOKEN_MAX_DAYS").is_none() {
            assert_eq!(parsed.api_token_max_days, defaults.api_token_max_days);
        }
        if std::env::var_os("ACCOUNTS_MAX_LIVE_TOKENS").is_none() {
            assert_eq!(parsed.max_live_tokens, defaults.max_live_tokens);
        }
        if std::env::var_os("ACCOUNTS_REGISTRATION_RATE_LIMIT").is_none() {
            assert_eq!(
                parsed.registration_rate_limit,
                defaults.registration_rate_limit
            );
        }
    }

    #[test]
    fn a_limit_of_zero_is_refused() {
        for flag in [
            "--registration-rate-limit",
            "--api-token-max-days",
            "--max-live-tokens",
            "--max-open-holds",
            "--max-pending-purchases",
            "--avatar-decode-concurrency",
        ] {
            assert!(
                Only::try_parse_from(["accounts", flag, "0"]).is_err(),
                "{flag}"
            );
        }
    }
}
