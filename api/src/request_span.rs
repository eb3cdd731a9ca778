//! The span each request runs in: its method and the route's template, never the path or
//! the query, which can hold a secret (an invitation link's token, an unsubscribe token).

use axum::extract::{MatchedPath, Request};
use tracing::Span;

/// The `request` span of `request` (at DEBUG, as `tower_http`'s default): the route is its
/// template (`/invitations/{token}/accept`), `unmatched` for a path no route has.
pub fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::debug_span!("request", method = %request.method(), route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;
    use tower_http::trace::TraceLayer;

    /// What the log lines written during a test say.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A request to a path holding a token is logged under its route's template: the
    /// token is in no line, even at DEBUG.
    #[tokio::test]
    async fn a_token_in_the_path_or_query_is_never_logged() {
        let written = Written::default();
        let writer = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route(
                "/invitations/{token}/accept",
                post(|| async {
                    tracing::info!("answered");
                }),
            )
            .layer(TraceLayer::new_for_http().make_span_with(request_span));
        let request =
            axum::http::Request::post("/invitations/inv_s3cret-link/accept?token=s3cret-query")
                .body(Body::empty())
                .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert!(response.status().is_success());
        let lines = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        assert!(
            lines.contains(r#"route="/invitations/{token}/accept""#) && lines.contains("answered"),
            "{lines}"
        );
        assert!(!lines.contains("s3cret"), "{lines}");
    }
}
