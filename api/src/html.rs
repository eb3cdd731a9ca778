//! The few HTML pages this service serves (the unsubscribe page, the sandbox provider's
//! pages, `/docs`), each with headers that keep it from being framed, sniffed or leaking its
//! URL (an unsubscribe link carries a token) to another site. Every other response gets
//! `X-Content-Type-Options: nosniff` from [`crate::routes::router`].

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

/// Our own pages: no script at all, inline styles only, forms posting back here only.
pub const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `/docs` loads Scalar from jsDelivr until it is vendored: the script from there (Scalar
/// evaluates strings, hence `'unsafe-eval'`), its injected styles, its fonts from
/// fonts.scalar.com, and requests to this service only ("try it").
pub const DOCS_POLICY: &str = "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-eval'; \
    style-src 'unsafe-inline' https://fonts.scalar.com; font-src https://fonts.scalar.com data:; \
    img-src 'self' data:; connect-src 'self'; worker-src blob:; form-action 'none'; \
    frame-ancestors 'none'; base-uri 'none'";

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
