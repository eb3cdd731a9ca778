//! Money in integer minor units with a currency, never floats.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An amount of money: minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units, e.g. 1500 for €15.00.
    pub amount: i64,
    /// Upper-case ISO 4217 code, e.g. `EUR`.
    pub currency: String,
}

impl Money {
    /// An amount in `currency`.
    pub fn new(amount: i64, currency: &str) -> Self {
        Self {
            amount,
            currency: currency.to_ascii_uppercase(),
        }
    }

    /// `12.34 EUR` (two decimals; every currency in the catalog has two).
    pub fn display(&self) -> String {
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        format!("{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

/// `amount × remaining / period`, rounded half up: the share of a period's price or
/// allowance for the part of the period that is left.
pub fn prorate(amount: i64, remaining: Duration, period: Duration) -> i64 {
    let period = period.as_secs().max(1) as i128;
    let remaining = (remaining.as_secs() as i128).min(period);
    let scaled = i128::from(amount) * remaining;
    let rounded = (2 * scaled + period).div_euclid(2 * period);
    rounded as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prorates_with_half_up_rounding_and_never_beyond_the_period() {
        let day = Duration::from_secs(86_400);
        assert_eq!(prorate(3000, day * 15, day * 30), 1500);
        assert_eq!(prorate(1000, day * 10, day * 30), 333);
        assert_eq!(prorate(2000, day * 10, day * 30), 667);
        assert_eq!(prorate(1000, day * 40, day * 30), 1000);
        assert_eq!(prorate(1000, Duration::ZERO, day * 30), 0);
    }

    #[test]
    fn displays_minor_units() {
        assert_eq!(Money::new(1505, "eur").display(), "15.05 EUR");
        assert_eq!(Money::new(-5, "EUR").display(), "-0.05 EUR");
    }
}
