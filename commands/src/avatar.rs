//! Avatar images: judged by their content (JPEG, PNG or WebP only), size- and
//! dimension-limited before any pixel is decoded (no decompression bombs), turned upright,
//! cropped to a centred square, scaled to at most 512 px and re-encoded as PNG — which
//! leaves every byte of metadata (EXIF, location, camera) behind.

use image::{ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

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
    let mut decoder = reader().into_decoder().map_err(classify)?;
    let orientation = decoder.orientation().map_err(classify)?;
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(classify)?;
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
    fn oversized_uploads_are_refused() {
        assert_eq!(
            normalize(&vec![0u8; MAX_BYTES + 1]),
            Err(AvatarError::TooLarge)
        );
    }
}
