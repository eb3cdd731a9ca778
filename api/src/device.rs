//! A readable device from a User-Agent header, e.g. "Firefox 128 on Linux".

/// Describes the browser and system of a User-Agent, or "Unknown device".
pub fn describe(user_agent: Option<&str>) -> String {
    let parsed = user_agent.and_then(|ua| woothee::parser::Parser::new().parse(ua));
    let Some(parsed) = parsed else {
        return "Unknown device".to_owned();
    };
    let known = |s: &str| !s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN;
    let major = parsed.version.split('.').next().unwrap_or_default();
    let browser = match (known(parsed.name), known(major)) {
        (true, true) => format!("{} {major}", parsed.name),
        (true, false) => parsed.name.to_owned(),
        _ => String::new(),
    };
    let os = if known(parsed.os) { parsed.os } else { "" };
    match (browser.is_empty(), os.is_empty()) {
        (false, false) => format!("{browser} on {os}"),
        (false, true) => browser,
        (true, false) => os.to_owned(),
        (true, true) => "Unknown device".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn names_common_browsers_and_systems() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(describe(Some(firefox)), "Firefox 128 on Linux");
        let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert!(
            describe(Some(chrome)).starts_with("Chrome 120 on Mac"),
            "{}",
            describe(Some(chrome))
        );
    }

    #[test]
    fn unknown_agents_are_unknown_devices() {
        assert_eq!(describe(None), "Unknown device");
        assert_eq!(describe(Some("")), "Unknown device");
    }
}
