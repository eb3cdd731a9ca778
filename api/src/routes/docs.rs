//! The interactive API reference at `/docs`: Scalar's page, served from the binary (the
//! npm package's standalone bundle, vendored in `api/assets/scalar/` with its licence), so
//! it works offline and under a content security policy that allows only this origin.

use crate::openapi::Routes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

/// The page: Scalar reads the document from `openapi.json` beside it.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Accounts API reference</title>
</head>
<body>
  <script id="api-reference" data-url="openapi.json" data-configuration='{"withDefaultFonts":false}'></script>
  <script src="docs/scalar.js"></script>
</body>
</html>
"#;

/// Scalar's standalone bundle (`@scalar/api-reference` 1.46.4, MIT).
const SCALAR: &[u8] = include_bytes!("../../assets/scalar/standalone.js");

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new().routes(routes!(docs)).routes(routes!(scalar))
}

/// The interactive reference of this service's OpenAPI document.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String)))]
pub async fn docs() -> Response {
    crate::html::docs(PAGE.to_owned())
}

/// The script of the reference page (Scalar, served from the binary).
#[utoipa::path(get, path = "/docs/scalar.js", tag = "operations",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
pub async fn scalar() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        SCALAR,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_bundle_is_the_vendored_release() {
        // The checksum in api/assets/scalar/README.md.
        assert_eq!(
            hex::encode(Sha256::digest(SCALAR)),
            "81b8d2bdab4a42ab81465386441b9a0f928b68631364360f00e8cce620cc1efb"
        );
        assert!(PAGE.contains(r#"src="docs/scalar.js""#));
        assert!(!PAGE.contains("http"), "nothing from another origin");
    }
}
