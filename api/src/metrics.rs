//! Prometheus metrics: what the service records as it runs, and what is read from storage
//! when scraped, rendered in Prometheus' text format for `GET /metrics` (operator token)
//! and for the separate `--metrics-listen` address (no authentication: bind it privately).
//!
//! **Recorded as it runs**, through the `metrics` facade into one recorder of
//! `metrics-exporter-prometheus` per process ([`recorder`]): HTTP requests by route
//! template and status ([`record_request`]), commands by name with their conflicts,
//! retries and append sizes (`commands::executor`), and the wait of password hashes for a
//! permit (`commands::passwords`). The recorder is global because the facade's macros
//! record into the global recorder from any thread or task; it is installed once, the
//! first time an [`crate::App`] is built, and every app of the process (the HTTP tests
//! start many) shares it and renders the same figures, so tests look for a figure's
//! presence, never an exact count.
//!
//! **Read when scraped**, from this app's own storage, so that each app shows its own:
//! the mail figures (`accounts_mail_*`, `accounts_notifier_behind`, as before) and how far
//! each follower of the log is behind its head ([`ScrapeFigures`]). They are set into a
//! recorder made for that one scrape, not the global one, where apps would overwrite each
//! other's gauges.

use crate::error::ApiError;
use crate::state::Core;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use commands::metrics::{
    APPEND_BATCH_SIZE, COMMAND_CONFLICTS, COMMAND_DURATION, COMMAND_RETRIES, PASSWORD_HASH_WAIT,
};
use metrics::{Unit, describe_counter, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use projections::credits::CARD_BATCH_SIZE;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod scrape;

pub use scrape::{ScrapeFigures, lag_seconds};

/// Counter: HTTP requests answered; labels `method`, `route` (the route's template, such
/// as `/workspaces/{workspace_id}`, or `unmatched`), `status`.
pub const HTTP_REQUESTS: &str = "accounts_http_requests_total";
/// Histogram: how long HTTP requests took to answer, in seconds; the same labels.
pub const HTTP_REQUEST_DURATION: &str = "accounts_http_request_duration_seconds";
/// Gauge: committed events a follower of the log has still to handle; label `read_model`.
pub const PROJECTION_LAG_EVENTS: &str = "accounts_projection_lag_events";
/// Gauge: seconds since the oldest event a follower has still to handle was recorded (0
/// when it has caught up); label `read_model`.
pub const PROJECTION_LAG_SECONDS: &str = "accounts_projection_lag_seconds";
/// The `route` of a request no route matched (404s of unknown paths): never the path
/// itself, which a client chooses.
pub const UNMATCHED: &str = "unmatched";

/// Bucket bounds of every `_seconds` histogram: 1 ms to 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds of the append and card batch sizes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];
/// How often the recorder drains its histograms when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder, installed as the global one on first use, with every recorded
/// figure described; a thread of its own keeps it tidy. Later calls return the same
/// handle. Should another recorder have been installed first (an embedder's), that one
/// keeps the figures and this handle renders none of them.
pub fn recorder() -> &'static PrometheusHandle {
    static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder was installed first; /metrics shows only the figures read when scraped");
        }
        describe_recorded();
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = started {
            tracing::warn!(%error, "no upkeep thread for the metrics; scrapes still drain them");
        }
        handle
    })
}

/// The exporter's settings: true histograms (buckets), not summaries.
fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(APPEND_BATCH_SIZE.into()), BATCH_BUCKETS)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(CARD_BATCH_SIZE.into()), BATCH_BUCKETS)
        })
        .expect("bucket lists are not empty")
}

/// The HELP text of every figure recorded as the service runs.
fn describe_recorded() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by method, route template and status."
    );
    describe_histogram!(
        COMMAND_DURATION,
        Unit::Seconds,
        "Time a command took, from queueing on its stream to its append or refusal."
    );
    describe_counter!(
        COMMAND_CONFLICTS,
        "Appends refused because the stream moved on (a wrong expected revision)."
    );
    describe_counter!(COMMAND_RETRIES, "Commands decided again after a conflict.");
    describe_histogram!(
        APPEND_BATCH_SIZE,
        Unit::Count,
        "Events per append made by a command."
    );
    describe_histogram!(
        CARD_BATCH_SIZE,
        Unit::Count,
        "Balance card reads answered by one statement."
    );
    describe_histogram!(
        PASSWORD_HASH_WAIT,
        Unit::Seconds,
        "Time a password hash waited for a permit of its share (verify or hash)."
    );
}

/// Middleware recording every request's count and duration by method, route template
/// ([`MatchedPath`], so ids in paths never become labels) and status. Added with
/// `Router::layer`, it runs once a route matched, and sees the fallback's 404s as
/// [`UNMATCHED`].
pub async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route, "status" => status)
        .record(started.elapsed());
    response
}

/// The standard methods by name; any other (a client may send any token) as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Every figure, recorded and read, in Prometheus' text format.
pub async fn render(core: &Core) -> Result<String, ApiError> {
    let mut text = recorder().render();
    text.push_str(&ScrapeFigures::read(core).await?.render());
    Ok(text)
}

/// The response of a scrape.
pub fn text_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The router of the `--metrics-listen` address: `GET /metrics` only, without
/// authentication, for scrapers on a private network.
pub fn router(core: Core) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(core)
}

async fn scrape(State(core): State<Core>) -> Result<Response, ApiError> {
    Ok(text_response(render(&core).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::StatusCode;
    use projections::Follower;
    use store::Backlog;
    use tower::ServiceExt;
    use workers::mail::queue::MailStats;

    /// The figures a router with the middleware records, in a recorder of this test's
    /// own (the test runs on one thread, which the local recorder follows).
    #[tokio::test(flavor = "current_thread")]
    async fn requests_are_counted_by_route_template_never_by_path() {
        let recorder = builder().build_recorder();
        let _local = metrics::set_default_local_recorder(&recorder);
        let router = Router::new()
            .route("/workspaces/{workspace_id}", get(|| async { "ok" }))
            .route(
                "/teapot",
                get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .layer(axum::middleware::from_fn(record_request));
        for (method, path) in [
            ("GET", "/workspaces/4f1c2a9e-0000-4000-8000-000000000001"),
            ("GET", "/workspaces/someone@example.com"),
            ("GET", "/teapot"),
            ("GET", "/users/12345/secret"),
            ("BREW", "/teapot"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            to_bytes(response.into_body(), 1 << 16).await.unwrap();
        }
        let text = recorder.handle().render();
        assert!(
            text.contains(
                r#"accounts_http_requests_total{method="GET",route="/workspaces/{workspace_id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"accounts_http_requests_total{method="GET",route="/teapot",status="418"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"accounts_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"method="other",route="/teapot",status="405""#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"accounts_http_request_duration_seconds_bucket{method="GET",route="/teapot",status="418",le="0.001"}"#
            ),
            "a histogram with buckets, not a summary: {text}"
        );
        for raw in ["4f1c2a9e", "example.com", "12345", "BREW"] {
            assert!(!text.contains(raw), "{raw} in {text}");
        }
    }

    #[test]
    fn scrape_time_figures_keep_the_mail_names_and_show_lag_per_read_model() {
        let now = 1_800_000_000_000_000;
        let figures = ScrapeFigures {
            mail: MailStats {
                sent: 3,
                skipped: 1,
                sending: 0,
                dead_letters: 2,
                outbox: 4,
            },
            notifier_behind: true,
            lag: vec![
                (Follower::Credits, Backlog::default()),
                (
                    Follower::Accounts,
                    Backlog {
                        events: 7,
                        oldest: Some(domain::Timestamp::from_unix_micros(now - 2_500_000)),
                    },
                ),
            ],
            now_micros: now,
        };
        let text = figures.render();
        for line in [
            "# HELP accounts_mail_sent_total E-mails sent.",
            "# TYPE accounts_mail_sent_total counter",
            "accounts_mail_sent_total 3",
            "accounts_mail_skipped_total 1",
            "accounts_mail_sending 0",
            "accounts_mail_dead_letters 2",
            "accounts_mail_outbox 4",
            "# TYPE accounts_notifier_behind gauge",
            "accounts_notifier_behind 1",
            "# TYPE accounts_projection_lag_events gauge",
            r#"accounts_projection_lag_events{read_model="credits"} 0"#,
            r#"accounts_projection_lag_events{read_model="accounts"} 7"#,
            r#"accounts_projection_lag_seconds{read_model="credits"} 0"#,
            r#"accounts_projection_lag_seconds{read_model="accounts"} 2.5"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }

    #[test]
    fn lag_is_never_negative() {
        let backlog = Backlog {
            events: 1,
            oldest: Some(domain::Timestamp::from_unix_micros(2_000_000)),
        };
        assert_eq!(lag_seconds(&backlog, 1_000_000), 0.0);
        assert_eq!(lag_seconds(&backlog, 3_000_000), 1.0);
        assert_eq!(lag_seconds(&Backlog::default(), 3_000_000), 0.0);
    }
}
