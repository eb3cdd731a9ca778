//! The few HTML pages this service serves (the unsubscribe page, the sandbox provider's
//! pages, `/docs`), each with headers that keep it from being framed, sniffed or leaking its
//! URL (an unsubscribe link carries a token) to another site. Every other response gets
//! `X-Content-Type-Options: nosniff` from [`crate::routes::router`].

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

/// Our own pages: no script at all, inline styles only, forms posting back here only.
pub const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `/docs`: this origin only. Scalar's script is served from here (vendored,
/// [`crate::routes::docs`]); it sets styles inline, hence `'unsafe-inline'` for styles
/// (never for scripts); the document and "try it" requests go to this service.
pub const DOCS_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// An HTML page of ours, under [`PAGE_POLICY`].
pub fn page(html: String) -> Response {
    with_headers(html, PAGE_POLICY)
}

/// The `/docs` page, under [`DOCS_POLICY`].
pub fn docs(html: String) -> Response {
    with_headers(html, DOCS_POLICY)
}

fn with_headers(html: String, policy: &'static str) -> Response {
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, policy),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert::<HeaderName>(name, HeaderValue::from_static(value));
    }
    response
}
