//! TOTP (RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits) and recovery codes.
//!
//! Codes are checked here against the account's secret, accepting the current step and one
//! either side; the aggregate then refuses any step at or before the last one used, so a
//! code works once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "Video Studio";
/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;
const STEP_SECONDS: u64 = 30;

/// What an authenticator app needs to enrol.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The shared secret, base32.
    pub secret: String,
    /// `otpauth://totp/…` for apps that take a link.
    pub otpauth_uri: String,
    /// The same as a QR code, PNG, base64.
    pub qr_png_base64: String,
}

/// A new 160-bit secret, base32 (the size RFC 4226 recommends for HMAC-SHA-1).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new_stack(bytes).to_base32()
}

fn totp(secret: &str, account_label: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account_label.replace(':', "_"))
        .build()
        .ok()
}

/// The link and QR code for `secret`, labelled with the account's address.
pub fn enrollment(secret: &str, account_label: &str) -> Result<Enrollment, String> {
    let totp = totp(secret, account_label).ok_or("invalid TOTP secret")?;
    Ok(Enrollment {
        secret: secret.to_owned(),
        otpauth_uri: totp.to_url().map_err(|e| e.to_string())?,
        qr_png_base64: totp.to_qr_base64().map_err(|e| e.to_string())?,
    })
}

/// The step a 6-digit `code` belongs to at `now` (unix seconds), if it is valid for the
/// current step or one either side.
pub fn verify(secret: &str, code: &str, now: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    totp(secret, "")?.check(code, now)
}

/// New recovery codes (shown once) and their hashes (stored). Each is 80 random bits,
/// written `xxxx-xxxx-xxxx-xxxx` in base32.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let mut bits: u128 = 0;
            for byte in bytes {
                bits = (bits << 8) | u128::from(byte);
            }
            let chars: String = (0..16)
                .map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char)
                .collect();
            format!(
                "{}-{}-{}-{}",
                &chars[0..4],
                &chars[4..8],
                &chars[8..12],
                &chars[12..16]
            )
        })
        .collect();
    let hashes = codes.iter().map(|c| hash_recovery_code(c)).collect();
    (codes, hashes)
}

/// The stored form of a recovery code: SHA-256 of it, lower-cased without separators.
pub fn hash_recovery_code(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

/// A PNG as base64 (for tests of the QR code).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 rows (8 digits, secret "12345678901234567890").
    #[test]
    fn matches_the_rfc_6238_test_vectors() {
        let secret = Secret::new_stack(*b"12345678901234567890");
        let rfc = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_step_duration(30)
            .with_secret(secret.clone())
            .build()
            .unwrap();
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let base32 = secret.to_base32();
        for (time, expected) in vectors {
            assert_eq!(rfc.generate(time).to_string(), expected, "t = {time}");
            // The service's 6-digit codes are the same values, truncated modulo 10^6.
            let step = verify(&base32, &expected[2..], time).expect("accepted");
            assert_eq!(step, time / 30);
        }
    }

    #[test]
    fn accepts_one_step_either_side_only() {
        let secret = new_secret();
        let at = 1_800_000_000u64;
        let code = |time: u64| totp(&secret, "").unwrap().generate(time).to_string();
        assert_eq!(verify(&secret, &code(at), at), Some(at / 30));
        assert_eq!(verify(&secret, &code(at - 30), at), Some(at / 30 - 1));
        assert_eq!(verify(&secret, &code(at + 30), at), Some(at / 30 + 1));
        assert_eq!(verify(&secret, &code(at - 60), at), None);
        assert_eq!(verify(&secret, &code(at + 60), at), None);
        assert_eq!(verify(&secret, "12345", at), None);
        assert_eq!(verify(&secret, "abcdef", at), None);
    }

    #[test]
    fn enrolment_gives_a_link_and_a_png_qr_code() {
        let secret = new_secret();
        let enrollment = enrollment(&secret, "ada@example.com").unwrap();
        assert!(enrollment.otpauth_uri.starts_with("otpauth://totp/"));
        assert!(enrollment.otpauth_uri.contains(&format!("secret={secret}")));
        let png = decode_base64(
            enrollment
                .qr_png_base64
                .trim_start_matches("data:image/png;base64,"),
        )
        .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn recovery_codes_are_random_and_stored_hashed() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes[0].len(), 19);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        assert_eq!(
            hashes[0],
            hash_recovery_code(&codes[0].to_uppercase().replace('-', " "))
        );
        assert!(
            !hashes
                .iter()
                .any(|h| codes.iter().any(|c| h.contains(c.as_str())))
        );
    }
}
