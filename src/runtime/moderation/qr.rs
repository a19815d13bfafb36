//! QR codes in images, for the `qr_codes` check: the image is fetched (a bot account's file
//! through `get_file`, the robot's image URL over HTTP — only from `wecom.media_hosts`, and a
//! `get_file` URL only from `onebot.file_hosts`, redirects included), decoded within limits (bytes, sides,
//! memory; large images are scaled down before the search) and searched with `rqrr`. Any step
//! that fails is logged and the image counts as having no code: a broken image never holds up a
//! message.

use std::io::Cursor;
use std::time::Duration;

use base64::Engine;
use image::imageops::FilterType;
use tracing::{debug, warn};

use crate::domain::AccountKey;
use crate::domain::{Event, EventKind, MixedItem};
use crate::runtime::Services;
use crate::runtime::accounts::{Ability, FileData};

/// The largest image fetched, in bytes.
pub const MAX_IMAGE_BYTES: usize = 5 << 20;
/// The longest side an image may have to be decoded at all.
const MAX_SIDE: u32 = 8192;
/// Images with more pixels are scaled down to about this many before the search (a phone
/// screenshot is about 2.6 million).
const MAX_SEARCHED_PIXELS: u64 = 3_000_000;
/// Memory the decoder may allocate for one image.
const MAX_DECODE_ALLOC: u64 = 256 << 20;
/// The most images of one message that are searched.
pub const MAX_IMAGES: usize = 3;
/// How long fetching and decoding one image may take.
const IMAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an image could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the image is larger than {MAX_IMAGE_BYTES} bytes")]
    TooLarge,
    #[error("the image could not be read: {0}")]
    Image(#[from] image::ImageError),
    #[error("the image could not be fetched: {0}")]
    Fetch(String),
}

/// The contents of the QR codes found in `bytes` (an encoded PNG or JPEG image).
pub fn decode(bytes: &[u8]) -> Result<Vec<String>, QrError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(QrError::TooLarge);
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| QrError::Image(image::ImageError::IoError(e)))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut grey = reader.decode()?.to_luma8();
    let pixels = u64::from(grey.width()) * u64::from(grey.height());
    if pixels > MAX_SEARCHED_PIXELS {
        let scale = (MAX_SEARCHED_PIXELS as f64 / pixels as f64).sqrt();
        let width = ((f64::from(grey.width()) * scale) as u32).max(1);
        let height = ((f64::from(grey.height()) * scale) as u32).max(1);
        grey = image::imageops::resize(&grey, width, height, FilterType::Triangle);
    }
    let (width, height) = (grey.width() as usize, grey.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        grey.get_pixel(x as u32, y as u32).0[0]
    });
    Ok(prepared
        .detect_grids()
        .into_iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, content)| content))
        .collect())
}

/// The images of a message: file ids on a bot account, URLs on the robot.
pub fn images(kind: &EventKind) -> Vec<&str> {
    match kind {
        EventKind::Image { url } => vec![url.as_str()],
        EventKind::Mixed { items } => items
            .iter()
            .filter_map(|item| match item {
                MixedItem::Image(source) => Some(source.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .take(MAX_IMAGES)
    .collect()
}

/// The QR codes in the images of `event`.
pub async fn codes_in(state: &Services, http: &reqwest::Client, event: &Event) -> Vec<String> {
    let mut codes = Vec::new();
    for source in images(&event.kind) {
        let found = tokio::time::timeout(IMAGE_TIMEOUT, async {
            let bytes = fetch(state, http, event, source).await?;
            tokio::task::spawn_blocking(move || decode(&bytes))
                .await
                .map_err(|e| QrError::Fetch(e.to_string()))?
        })
        .await;
        match found {
            Ok(Ok(found)) => codes.extend(found),
            Ok(Err(e)) => warn!(chat = ?event.chat_id(), source, error = %e,
                "image not searched for QR codes"),
            Err(_) => warn!(chat = ?event.chat_id(), source,
                "image not searched for QR codes: it took too long"),
        }
    }
    debug!(chat = ?event.chat_id(), codes = codes.len(), "QR search");
    codes
}

/// The bytes of an image: through the bot account (`get_file`), or by its URL.
async fn fetch(
    state: &Services,
    http: &reqwest::Client,
    event: &Event,
    source: &str,
) -> Result<Vec<u8>, QrError> {
    let url = match &event.account {
        Some(account) => {
            let key = AccountKey {
                bot: event.bot.clone(),
                user_id: account.clone(),
            };
            if !state.accounts.offers(&key, Ability::ReadFile) {
                return Err(QrError::Fetch(
                    "the implementation does not offer reading files".into(),
                ));
            }
            let file = state
                .accounts
                .file(&key, source)
                .await
                .map_err(|e| QrError::Fetch(e.to_string()))?;
            match file {
                FileData::Base64(data) => {
                    if data.len() > MAX_IMAGE_BYTES / 3 * 4 + 4 {
                        return Err(QrError::TooLarge);
                    }
                    return base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .map_err(|e| QrError::Fetch(format!("data is not base64: {e}")));
                }
                FileData::Url(url) => state
                    .moderator
                    .fetch
                    .files
                    .check_str(&url, "onebot.file_hosts")
                    .map_err(|e| QrError::Fetch(format!("get_file URL refused: {e}")))?,
            }
        }
        None => state
            .moderator
            .fetch
            .media
            .check_str(source, "wecom.media_hosts")
            .map_err(|e| QrError::Fetch(format!("image URL refused: {e}")))?,
    };
    download(http, url).await
}

/// Downloads `url`, refusing more than [`MAX_IMAGE_BYTES`].
async fn download(http: &reqwest::Client, url: url::Url) -> Result<Vec<u8>, QrError> {
    let fetch_error = |e: reqwest::Error| QrError::Fetch(e.without_url().to_string());
    let mut response = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(fetch_error)?;
    if response
        .content_length()
        .is_some_and(|n| n > MAX_IMAGE_BYTES as u64)
    {
        return Err(QrError::TooLarge);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
        if bytes.len() + chunk.len() > MAX_IMAGE_BYTES {
            return Err(QrError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG of a QR code holding `text`, `scale` pixels per module.
    fn qr_png(text: &str, scale: u32) -> Vec<u8> {
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        let width = code.width() as u32;
        let colors = code.to_colors();
        let side = (width + 8) * scale;
        let img = image::GrayImage::from_fn(side, side, |x, y| {
            let (mx, my) = (x / scale, y / scale);
            let dark = mx >= 4
                && my >= 4
                && mx < width + 4
                && my < width + 4
                && colors[((my - 4) * width + (mx - 4)) as usize] == qrcode::Color::Dark;
            image::Luma([if dark { 0 } else { 255 }])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_qr_code_is_read_and_a_plain_image_has_none() {
        let png = qr_png("https://weixin.qq.com/g/AbCdEf", 6);
        assert_eq!(
            decode(&png).unwrap(),
            vec!["https://weixin.qq.com/g/AbCdEf"]
        );
        let blank = image::GrayImage::from_pixel(200, 100, image::Luma([200]));
        let mut out = Vec::new();
        blank
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        assert!(decode(&out).unwrap().is_empty());
    }

    #[test]
    fn a_large_image_is_scaled_down_and_still_read() {
        // 41 modules + quiet zone at 60 px each: about 2,940 px a side, 8.6 million pixels.
        let png = qr_png("加我微信 kj12345 领取资料，长一点的内容让码更密", 60);
        assert_eq!(decode(&png).unwrap().len(), 1);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(decode(b"not an image"), Err(QrError::Image(_))));
        assert!(matches!(
            decode(&vec![0u8; MAX_IMAGE_BYTES + 1]),
            Err(QrError::TooLarge)
        ));
        let mut truncated = qr_png("x", 4);
        truncated.truncate(truncated.len() / 2);
        assert!(decode(&truncated).is_err());
    }
}
