//! Integers of request bodies as JSON Schema counts them: `7`, `7.0` and `7e0` are the
//! same integer, so an `integer` field takes a number without a fractional part in any
//! spelling (`serde` alone refuses `7.0` for a `u64`). Use with
//! `#[serde(deserialize_with = "crate::integers::…")]`.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// An integer type a JSON number can be read into.
trait Integer: TryFrom<u64> + TryFrom<i64> + Sized {
    const NAME: &'static str;
}

impl Integer for u64 {
    const NAME: &'static str = "an unsigned 64-bit integer";
}
impl Integer for u32 {
    const NAME: &'static str = "an unsigned 32-bit integer";
}
impl Integer for i64 {
    const NAME: &'static str = "a signed 64-bit integer";
}

struct IntegerVisitor<T>(PhantomData<T>);

impl<T: Integer> IntegerVisitor<T> {
    fn out_of_range<E: de::Error>(value: impl fmt::Display) -> E {
        E::custom(format_args!("{value} is not {}", T::NAME))
    }
}

impl<T: Integer> Visitor<'_> for IntegerVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", T::NAME)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| Self::out_of_range(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| Self::out_of_range(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::invalid_type(de::Unexpected::Float(v), &self));
        }
        // Every integral f64 strictly inside these ranges converts exactly. Both ends are
        // excluded: an integer literal just past either (2^64, or -2^63 - 1) is read as the
        // float at the end, and integers at the ends themselves arrive as `u64`/`i64`.
        if (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            self.visit_u64(v as u64)
        } else if v < 0.0 && v > -9_223_372_036_854_775_808.0 {
            self.visit_i64(v as i64)
        } else {
            Err(Self::out_of_range(v))
        }
    }
}

/// A `u64`.
pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(IntegerVisitor(PhantomData))
}

/// An `i64`.
pub fn i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(IntegerVisitor(PhantomData))
}

/// A `u32` or `null` (for a field that is also `#[serde(default)]`).
pub fn option_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    struct OptionVisitor;
    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned 32-bit integer or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<u32>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<u32>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
            d.deserialize_any(IntegerVisitor(PhantomData)).map(Some)
        }
    }
    deserializer.deserialize_option(OptionVisitor)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::u64")]
        credits: u64,
        #[serde(default, deserialize_with = "super::option_u32")]
        days: Option<u32>,
        #[serde(default, deserialize_with = "super::i64")]
        created: i64,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integral_numbers_are_integers_however_spelt() {
        let body = parse(r#"{"credits": 1192.0, "days": 3e1, "created": -5.0}"#).unwrap();
        assert_eq!(
            (body.credits, body.days, body.created),
            (1192, Some(30), -5)
        );
        let body = parse(r#"{"credits": 18446744073709551615, "days": null}"#).unwrap();
        assert_eq!((body.credits, body.days, body.created), (u64::MAX, None, 0));
        let body = parse(r#"{"credits": 1, "created": -9223372036854775808}"#).unwrap();
        assert_eq!(body.created, i64::MIN);
    }

    /// Schemathesis sent this one: between 2^51 and 2^52 a float has halves, and serde_json's
    /// default (not correctly rounded) parser read it as `3620693263231505.5`, a fraction.
    #[test]
    fn large_integral_floats_are_read_exactly() {
        for (json, credits, created) in [
            (
                r#"{"credits": 3620693263231506.0, "created": -8111182836304939.0}"#,
                3_620_693_263_231_506,
                -8_111_182_836_304_939,
            ),
            (
                r#"{"credits": 4503599627370495.0, "created": -4503599627370495.0}"#,
                4_503_599_627_370_495,
                -4_503_599_627_370_495,
            ),
            (
                r#"{"credits": 5.3456918505557896e+16}"#,
                53_456_918_505_557_896,
                0,
            ),
        ] {
            let body = parse(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!((body.credits, body.created), (credits, created), "{json}");
        }
    }

    #[test]
    fn fractions_out_of_range_values_and_other_types_are_refused() {
        for json in [
            r#"{"credits": 1.5}"#,
            r#"{"credits": -1}"#,
            r#"{"credits": -1.0}"#,
            r#"{"credits": 18446744073709551616}"#,
            r#"{"credits": "7"}"#,
            r#"{"credits": 1, "days": 4294967296}"#,
            r#"{"credits": 1, "days": 1.25}"#,
            r#"{"credits": 1, "created": 9223372036854775808}"#,
            r#"{"credits": 1, "created": -9223372036854775809}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }
}
