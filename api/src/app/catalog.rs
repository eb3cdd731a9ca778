//! The catalog of plans, packs, claims and API policy: the shipped one, or one the
//! deployment names, validated before the service starts.

use anyhow::Context;
use domain::catalog::Catalog;

/// The shipped catalog (`config/catalog.toml`).
pub const DEFAULT_CATALOG: &str = include_str!("../../../config/catalog.toml");

/// Loads and validates the catalog at `path`, or the shipped one.
pub fn load_catalog(path: Option<&std::path::Path>) -> anyhow::Result<Catalog> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the catalog {}", path.display()))?,
        None => DEFAULT_CATALOG.to_owned(),
    };
    let catalog: Catalog = toml::from_str(&text).context("parsing the catalog")?;
    catalog
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid catalog: {e}"))?;
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_valid() {
        let catalog = load_catalog(None).unwrap();
        assert_eq!(catalog.currency, "EUR");
        assert!(catalog.claim("signup-bonus").is_some());
        assert!(catalog.plans.windows(2).all(|w| w[0].rank < w[1].rank));
    }

    #[test]
    fn a_broken_catalog_is_refused() {
        let path = std::env::temp_dir().join(format!("catalog-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            "currency = \"EUR\"\n[[packs]]\nid = \"a\"\nname = \"A\"\ncredits = 0\nprice = 1\n",
        )
        .unwrap();
        assert!(load_catalog(Some(&path)).is_err());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_catalog_naming_an_unknown_scope_is_refused_saying_which() {
        let path = std::env::temp_dir().join(format!("catalog-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            "currency = \"EUR\"\n[free]\nscopes = [\"credits:read\", \"credits:write\"]\n",
        )
        .unwrap();
        let error = format!("{:#}", load_catalog(Some(&path)).unwrap_err());
        std::fs::remove_file(path).unwrap();
        assert!(
            error.contains("credits:write") && error.contains("usage:read"),
            "{error}"
        );
    }
}
