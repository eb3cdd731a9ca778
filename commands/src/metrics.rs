//! The names of the figures the command layer records through the `metrics` facade, and
//! how a command is named in them. Nothing here installs a recorder: without one (unit
//! tests, the CLI's one-off subcommands) recording costs next to nothing and goes nowhere;
//! the `accounts` service installs one (`api::metrics`) and renders them for Prometheus.

/// Histogram: how long a command took, from queueing on its stream to its append (or its
/// refusal), in seconds; label `command`.
pub const COMMAND_DURATION: &str = "accounts_command_duration_seconds";
/// Counter: appends refused because the stream moved on (a wrong expected revision);
/// label `command`.
pub const COMMAND_CONFLICTS: &str = "accounts_command_conflicts_total";
/// Counter: commands decided again after such a conflict (a conflict on the last attempt
/// is not retried: the command fails with contention); label `command`.
pub const COMMAND_RETRIES: &str = "accounts_command_retries_total";
/// Histogram: events per append of a command batch (one or more commands queued on the
/// same stream, committed together).
pub const APPEND_BATCH_SIZE: &str = "accounts_append_batch_size";
/// Histogram: commands per append (more than one when commands queued on a hot stream).
pub const COMMANDS_PER_APPEND: &str = "accounts_commands_per_append";
/// Counter: snapshots of aggregates' state saved.
pub const SNAPSHOTS_SAVED: &str = "accounts_snapshots_saved_total";
/// Histogram: how long a password hash waited for a permit of its share before running,
/// in seconds; label `share` (`verify` or `hash`).
pub const PASSWORD_HASH_WAIT: &str = "accounts_password_hash_wait_seconds";

/// The `command` label of a command run by [`crate::Executor::execute`]: the aggregate
/// (`account`, `credit_ledger`) and, when the decision was written in a handler of its
/// own, that handler (`account.change_password`, `access_token.rotate`). Handlers that
/// funnel every command of an aggregate through one helper (`run`, `execute`) show the
/// aggregate alone. Both parts come from type names known at compile time, so the label
/// never carries a request's data and its values are a small fixed set.
///
/// `aggregate` and `decide` are [`std::any::type_name`]s: of the aggregate, and of the
/// closure that decides (whose path names the function it was written in).
pub fn command_name(aggregate: &str, decide: &str) -> String {
    let aggregate = snake_case(last_segment(&without_generics(aggregate)).unwrap_or("unknown"));
    let decide = without_generics(decide);
    let handler = decide
        .rsplit("::")
        .find(|segment| !segment.is_empty() && !segment.starts_with('{'))
        .filter(|handler| {
            handler
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    match handler {
        Some(handler) if !GENERIC_HELPERS.contains(&handler) => format!("{aggregate}.{handler}"),
        _ => aggregate,
    }
}

/// Helpers through which a command handler runs every command of its aggregate: they
/// name no command.
const GENERIC_HELPERS: &[&str] = &["run", "execute", "on_account", "on_user"];

/// `text` without anything between angle brackets (`<impl a::B>`, `run<a::C>`).
fn without_generics(text: &str) -> String {
    let mut depth = 0usize;
    let mut kept = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => kept.push(c),
            _ => {}
        }
    }
    kept
}

fn last_segment(path: &str) -> Option<&str> {
    path.rsplit("::").find(|segment| !segment.is_empty())
}

/// `CreditLedger` → `credit_ledger`.
fn snake_case(name: &str) -> String {
    let mut snake = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_named_by_its_aggregate_and_handler() {
        assert_eq!(
            command_name(
                "domain::account::Account",
                "commands::accounts::security::<impl commands::accounts::Accounts>::change_password::{{closure}}::{{closure}}"
            ),
            "account.change_password"
        );
        assert_eq!(
            command_name(
                "domain::credits::CreditLedger",
                "commands::credits::<impl commands::credits::Credits>::run::{{closure}}::{{closure}}"
            ),
            "credit_ledger"
        );
        assert_eq!(
            command_name(
                "domain::access_token::AccessToken",
                "commands::access_tokens::<impl commands::access_tokens::AccessTokens>::rotate<'_>::{{closure}}"
            ),
            "access_token.rotate"
        );
        // A generic aggregate and a closure outside any impl.
        assert_eq!(
            command_name(
                "domain::settings::Settings<domain::editor::Prefs>",
                "commands::helpers::apply::{{closure}}"
            ),
            "settings.apply"
        );
        assert_eq!(command_name("", "{{closure}}"), "unknown");
    }

    /// The real type name of a closure written in a function, as the executor sees it.
    #[test]
    fn the_handler_is_read_from_a_real_closure_type_name() {
        fn change_password() -> &'static str {
            fn name_of<F>(_: &F) -> &'static str {
                std::any::type_name::<F>()
            }
            let decide = |x: u32| x + 1;
            name_of(&decide)
        }
        assert_eq!(
            command_name("domain::account::Account", change_password()),
            "account.change_password"
        );
    }
}
