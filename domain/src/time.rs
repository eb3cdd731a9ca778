//! A UTC timestamp that serialises as RFC 3339 and converts to the integer microseconds
//! the read models store.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant in UTC with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Builds a timestamp, truncated to whole microseconds so that it round-trips through
    /// every storage format unchanged.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let micros = at.unix_timestamp_nanos() / 1_000;
        Self::from_unix_micros(micros as i64)
    }

    /// Builds a timestamp from microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: i64) -> Self {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Self(at)
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    /// The underlying date-time.
    pub fn datetime(self) -> OffsetDateTime {
        self.0
    }

    /// This instant plus a duration.
    pub fn plus(self, duration: std::time::Duration) -> Self {
        Self::from_datetime(self.0 + duration)
    }

    /// The time elapsed from `earlier` to this instant (zero if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> std::time::Duration {
        let micros = self.unix_micros().saturating_sub(earlier.unix_micros());
        std::time::Duration::from_micros(micros.max(0) as u64)
    }

    /// The UTC day as people write it on documents: `3 December 2026`.
    pub fn human_date(self) -> String {
        let date = self.datetime().date();
        format!("{} {} {}", date.day(), date.month(), date.year())
    }

    /// RFC 3339 text, e.g. `2026-11-22T10:00:00.123456Z`.
    pub fn to_rfc3339(self) -> String {
        self.0.format(&Rfc3339).unwrap_or_default()
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let at = OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)?;
        Ok(Self::from_datetime(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_people_write_them() {
        let at = Timestamp::from_datetime(time::macros::datetime!(2026-12-03 05:55:52.515156 UTC));
        assert_eq!(at.human_date(), "3 December 2026");
    }

    #[test]
    fn round_trips_through_json_and_micros() {
        let at = Timestamp::from_unix_micros(1_795_000_000_123_456);
        let json = serde_json::to_string(&at).unwrap();
        assert_eq!(json, "\"2026-11-18T11:06:40.123456Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, at);
        assert_eq!(back.unix_micros(), 1_795_000_000_123_456);
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp::from_unix_micros(10);
        let b = Timestamp::from_unix_micros(20);
        assert_eq!(b.since(a).as_micros(), 10);
        assert_eq!(a.since(b).as_micros(), 0);
    }
}
