//! Avatar images: judged by their content (JPEG, PNG or WebP only), size- and
//! dimension-limited before any pixel is decoded (no decompression bombs), turned upright,
//! cropped to a centred square, scaled to at most 512 px and re-encoded as PNG — which
//! leaves every byte of metadata (EXIF, location, camera) behind.
//!
//! Decoding is the costliest thing a request can ask for, so it is bounded twice: at most
//! a few decodes run at once ([`DecodeSlots`]; a request that cannot get a slot soon is
//! refused as busy), and a decode whose request went away (timed out, or the client left)
//! stops at the next step ([`normalize_unless`]).

use image::{ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest upload accepted.
pub const MAX_BYTES: usize = 5 * 1024 * 1024;
/// Largest side of an image accepted, before decoding.
pub const MAX_SIDE: u32 = 8_192;
/// Most pixels accepted, before decoding.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Side of the stored square.
pub const SIZE: u32 = 512;
/// The stored format.
pub const CONTENT_TYPE: &str = "image/png";

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvatarError {
    /// Over [`MAX_BYTES`].
    #[error("the image is larger than 5 MB")]
    TooLarge,
    /// Not a JPEG, PNG or WebP, whatever it claims to be.
    #[error("the content is not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    /// More pixels than allowed.
    #[error("the image has too many pixels (at most 8192 per side and 40 megapixels)")]
    TooManyPixels,
    /// Truncated or corrupt.
    #[error("the image could not be decoded: {0}")]
    Invalid(String),
    /// The request that asked for it went away; stopped between two steps.
    #[error("the decode was abandoned")]
    Cancelled,
}

/// The steps of [`normalize_unless`], between which it checks whether to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The header was read: format and dimensions are known.
    Header,
    /// The pixels were decoded (the costly step).
    Decoded,
    /// Turned upright, cropped and scaled.
    Scaled,
}

/// Set when a decode's request goes away; the decode stops at its next step.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the decode to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was asked to.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that cancels when dropped (with the request's future), unless disarmed.
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(Some(self.clone()))
    }
}

/// Cancels its decode when dropped; see [`Cancel::on_drop`].
#[derive(Debug)]
pub struct CancelOnDrop(Option<Cancel>);

impl CancelOnDrop {
    /// The decode finished: dropping the guard no longer cancels anything.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = &self.0 {
            cancel.cancel();
        }
    }
}

/// The decodes that may run at once, shared by every request of a process.
#[derive(Debug, Clone)]
pub struct DecodeSlots {
    permits: Arc<Semaphore>,
    wait: Duration,
}

/// No slot came free within the wait: the service is busy decoding other images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many images are being decoded; try again in a moment")]
pub struct Busy;

impl DecodeSlots {
    /// `slots` decodes at once (at least one); a request waits at most `wait` for one.
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(slots.max(1))),
            wait,
        }
    }

    /// A slot, held until the permit is dropped (by the decode, when it ends), or
    /// [`Busy`] if none came free within the wait.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Busy> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(Busy),
        }
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

impl Default for DecodeSlots {
    /// Two decodes at once; wait up to two seconds for a slot.
    fn default() -> Self {
        Self::new(2, Duration::from_secs(2))
    }
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    limits
}

/// Checks and re-encodes an uploaded image; CPU-bound, run it off the async runtime.
pub fn normalize(bytes: &[u8]) -> Result<Vec<u8>, AvatarError> {
    normalize_unless(bytes, |_| false)
}

/// [`normalize`], asking `stop` after each [`Step`] whether to go on: it returns
/// [`AvatarError::Cancelled`] as soon as `stop` says so.
pub fn normalize_unless(
    bytes: &[u8],
    mut stop: impl FnMut(Step) -> bool,
) -> Result<Vec<u8>, AvatarError> {
    let mut after = |step| {
        if stop(step) {
            Err(AvatarError::Cancelled)
        } else {
            Ok(())
        }
    };
    if bytes.len() > MAX_BYTES {
        return Err(AvatarError::TooLarge);
    }
    let format = image::guess_format(bytes).map_err(|_| AvatarError::UnsupportedFormat)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
    ) {
        return Err(AvatarError::UnsupportedFormat);
    }
    let reader = || {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        reader.limits(limits());
        reader
    };
    let (width, height) = reader().into_dimensions().map_err(classify)?;
    if width == 0 || height == 0 {
        return Err(AvatarError::Invalid("the image is empty".into()));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(AvatarError::TooManyPixels);
    }
    after(Step::Header)?;
    let mut decoder = reader().into_decoder().map_err(classify)?;
    let orientation = decoder.orientation().map_err(classify)?;
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(classify)?;
    after(Step::Decoded)?;
    image.apply_orientation(orientation);

    let side = image.width().min(image.height());
    let square = image.crop_imm(
        (image.width() - side) / 2,
        (image.height() - side) / 2,
        side,
        side,
    );
    let target = side.min(SIZE);
    let scaled = if side > target {
        square.resize_exact(target, target, image::imageops::FilterType::Lanczos3)
    } else {
        square
    };
    after(Step::Scaled)?;
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(scaled.to_rgba8())
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| AvatarError::Invalid(e.to_string()))?;
    Ok(png)
}

fn classify(error: image::ImageError) -> AvatarError {
    match error {
        image::ImageError::Limits(_) => AvatarError::TooManyPixels,
        other => AvatarError::Invalid(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut bytes = Vec::new();
        image::DynamicImage::ImageRgb8(image)
            .write_to(&mut Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    }

    #[test]
    fn jpeg_png_and_webp_become_square_pngs() {
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let png = normalize(&encode(900, 600, format)).unwrap();
            let decoded = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
            assert_eq!(
                (decoded.width(), decoded.height()),
                (512, 512),
                "{format:?}"
            );
        }
        let small =
            image::load_from_memory(&normalize(&encode(100, 80, ImageFormat::Png)).unwrap())
                .unwrap();
        assert_eq!((small.width(), small.height()), (80, 80), "never scaled up");
    }

    #[test]
    fn other_content_is_refused_whatever_its_name() {
        assert_eq!(
            normalize(b"<html>not an image</html>"),
            Err(AvatarError::UnsupportedFormat)
        );
        assert_eq!(
            normalize(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
            Err(AvatarError::UnsupportedFormat)
        );
    }

    #[test]
    fn truncated_images_are_refused() {
        let png = encode(300, 300, ImageFormat::Png);
        assert!(matches!(
            normalize(&png[..png.len() / 2]),
            Err(AvatarError::Invalid(_))
        ));
    }

    #[test]
    fn decompression_bombs_are_refused_before_decoding() {
        // A PNG header announcing 60000 × 60000 pixels, followed by almost nothing.
        let mut png = encode(1, 1, ImageFormat::Png);
        png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(normalize(&png), Err(AvatarError::TooManyPixels));
        let mut wide = encode(1, 1, ImageFormat::Png);
        wide[16..20].copy_from_slice(&9_000u32.to_be_bytes());
        let crc = crc32(&wide[12..29]);
        wide[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(normalize(&wide), Err(AvatarError::TooManyPixels));
    }

    /// CRC-32 as PNG chunks use it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_decode_asked_to_stop_stops_at_the_next_step() {
        let png = encode(900, 600, ImageFormat::Png);
        for stop_after in [Step::Header, Step::Decoded, Step::Scaled] {
            let mut steps = Vec::new();
            let result = normalize_unless(&png, |step| {
                steps.push(step);
                step == stop_after
            });
            assert_eq!(result, Err(AvatarError::Cancelled));
            assert_eq!(
                steps.last(),
                Some(&stop_after),
                "nothing after {stop_after:?}"
            );
        }
        let cancel = Cancel::default();
        let guard = cancel.on_drop();
        assert!(!cancel.is_cancelled());
        drop(guard);
        assert!(cancel.is_cancelled(), "dropping the request cancels");
        let cancel = Cancel::default();
        cancel.on_drop().disarm();
        assert!(!cancel.is_cancelled(), "a finished decode is not cancelled");
    }

    #[tokio::test]
    async fn a_request_that_gets_no_slot_in_time_is_busy() {
        let slots = DecodeSlots::new(1, Duration::ZERO);
        let held = slots.acquire().await.unwrap();
        assert_eq!(slots.available(), 0);
        assert_eq!(slots.acquire().await.unwrap_err(), Busy);
        drop(held);
        assert!(slots.acquire().await.is_ok());
    }

    #[test]
    fn oversized_uploads_are_refused() {
        assert_eq!(
            normalize(&vec![0u8; MAX_BYTES + 1]),
            Err(AvatarError::TooLarge)
        );
    }
}
