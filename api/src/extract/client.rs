//! Where a request comes from: the client IP (from a trusted proxy header, read from the
//! right), the user agent and a coarse location.

use crate::device;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use domain::session::SessionOrigin;
use std::net::{IpAddr, SocketAddr};

/// Where the request comes from.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// From the trusted proxy header when configured, else the peer address.
    pub ip: Option<IpAddr>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
    /// From the trusted location headers, when configured.
    pub location: Option<String>,
}

impl ClientInfo {
    /// The session origin for a sign-in.
    pub fn origin(&self) -> SessionOrigin {
        SessionOrigin {
            device: device::describe(self.user_agent.as_deref()),
            ip: self.ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.clone(),
            location: self.location.clone(),
        }
    }
}

fn header_text(headers: &HeaderMap, name: &HeaderName, max: usize) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let clean: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// The client IP that `trusted_proxies` proxies vouch for in the list header `name`
/// (`X-Forwarded-For: <client>, <proxy 1>, …`): each proxy appends the address it received
/// the request from, so the entry `trusted_proxies` places from the right is the one the
/// outermost trusted proxy wrote; entries to its left are whatever the client sent. The
/// header's lines are read as one list, in order (a proxy may add a line of its own rather
/// than extend the last). With fewer entries than trusted proxies, or an entry that is not
/// an IP address, there is no answer (the caller falls back to the peer address). A
/// single-value header such as `CF-Connecting-IP` is a list of one, read with 1.
pub fn forwarded_ip(
    headers: &HeaderMap,
    name: &HeaderName,
    trusted_proxies: usize,
) -> Option<IpAddr> {
    // Split as bytes: only the entry chosen must read as text, so bytes a client put in
    // the entries to its left cannot void the list (and with it the proxies' word).
    let lines: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let entry = lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|b| *b == b','))
        .nth(trusted_proxies.checked_sub(1)?)?;
    parse_ip(std::str::from_utf8(entry).ok()?.trim())
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, or with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn parse_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let settings = &state.core.http;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = settings
            .client_ip_header
            .as_ref()
            .and_then(|name| forwarded_ip(&parts.headers, name, settings.trusted_proxies));
        let country = settings
            .country_header
            .as_ref()
            .and_then(|name| header_text(&parts.headers, name, 8));
        let city = settings
            .city_header
            .as_ref()
            .and_then(|name| header_text(&parts.headers, name, 64));
        let location = match (city, country) {
            (Some(city), Some(country)) => Some(format!("{city}, {country}")),
            (city, country) => city.or(country),
        };
        Ok(Self {
            ip: forwarded.or(peer),
            user_agent: header_text(&parts.headers, &header::USER_AGENT, 512),
            location,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(name, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_entry_the_trusted_proxies_wrote_is_used_whatever_the_client_prepends() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let one = headers("x-forwarded-for", &["198.51.100.1, 203.0.113.7"]);
        assert_eq!(forwarded_ip(&one, &xff, 1), ip("203.0.113.7"));
        assert_eq!(forwarded_ip(&one, &xff, 2), ip("198.51.100.1"));
        assert_eq!(
            forwarded_ip(&one, &xff, 3),
            None,
            "fewer entries than proxies"
        );
        let alone = headers("x-forwarded-for", &["203.0.113.7"]);
        assert_eq!(forwarded_ip(&alone, &xff, 1), ip("203.0.113.7"));
        // A spoofed header line before the proxy's own.
        let lines = headers("x-forwarded-for", &["198.51.100.1", "203.0.113.7"]);
        assert_eq!(forwarded_ip(&lines, &xff, 1), ip("203.0.113.7"));
        // A long spoofed prefix changes nothing (nothing is cut from the right).
        let long = format!("{}203.0.113.7", "10.0.0.1, ".repeat(200));
        let long = headers("x-forwarded-for", &[&long]);
        assert_eq!(forwarded_ip(&long, &xff, 1), ip("203.0.113.7"));
        assert_eq!(forwarded_ip(&HeaderMap::new(), &xff, 1), None);
        let garbage = headers("x-forwarded-for", &["203.0.113.7, unknown"]);
        assert_eq!(forwarded_ip(&garbage, &xff, 1), None);
        // Bytes that are not text in what the client sent void only their own entry.
        let mut binary = HeaderMap::new();
        binary.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 203.0.113.7").unwrap(),
        );
        assert_eq!(forwarded_ip(&binary, &xff, 1), ip("203.0.113.7"));
        assert_eq!(forwarded_ip(&binary, &xff, 2), None);
    }

    #[test]
    fn single_value_headers_and_ports_are_read() {
        let cf = HeaderName::from_static("cf-connecting-ip");
        let v6 = headers("cf-connecting-ip", &["2001:db8::1"]);
        assert_eq!(forwarded_ip(&v6, &cf, 1), ip("2001:db8::1"));
        let ported = headers("cf-connecting-ip", &["[2001:db8::1]:4711"]);
        assert_eq!(forwarded_ip(&ported, &cf, 1), ip("2001:db8::1"));
        let bracketed = headers("cf-connecting-ip", &["[2001:db8::1]"]);
        assert_eq!(forwarded_ip(&bracketed, &cf, 1), ip("2001:db8::1"));
        let v4 = headers("cf-connecting-ip", &["203.0.113.7:80"]);
        assert_eq!(forwarded_ip(&v4, &cf, 1), ip("203.0.113.7"));
    }
}
