//! The WXBizMsgCrypt scheme (WeCom's callback encryption): signatures, AES-256-CBC encryption with PKCS#7-to-32
//! padding, and the `random ‖ length ‖ message ‖ receive id` plaintext framing.
//!
//! Pure: no I/O, no clock, and no randomness of its own (callers pass the 16 random bytes in).
//! Every step that reads hostile input returns a typed [`CryptoError`] and never panics.

use std::fmt;

use aes::cipher::{
    BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit, block_padding::NoPadding,
};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// WeCom pads to a multiple of 32 bytes, not to the AES block size.
const PAD_BLOCK: usize = 32;
/// 16 random bytes, then a big-endian u32 message length.
const HEADER_LEN: usize = 20;

/// Base64 that accepts keys and ciphertexts with non-zero trailing bits and with or without `=`
/// padding, as WeCom's own libraries do (most EncodingAESKeys fail a strict decode).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One failure class of the scheme. The numbers in [`CryptoError::code`] are the official
/// libraries' error codes, handy in logs when comparing with WeCom's documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("signature mismatch")]
    SignatureMismatch,
    #[error("invalid EncodingAESKey: {0}")]
    InvalidAesKey(String),
    #[error("receive id mismatch: the message is for another receiver")]
    ReceiveIdMismatch,
    #[error("ciphertext is not valid base64")]
    Base64Decode,
    #[error("ciphertext length {0} is not a positive multiple of 16 bytes")]
    CiphertextLength(usize),
    #[error("bad padding after decryption")]
    BadPadding,
    #[error("decrypted buffer is malformed: {0}")]
    BadPlaintext(&'static str),
}

impl CryptoError {
    /// The official WXBizMsgCrypt error code for this class.
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::SignatureMismatch => -40001,
            CryptoError::InvalidAesKey(_) => -40004,
            CryptoError::ReceiveIdMismatch => -40005,
            CryptoError::CiphertextLength(_) | CryptoError::BadPadding => -40007,
            CryptoError::BadPlaintext(_) => -40008,
            CryptoError::Base64Decode => -40010,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            CryptoError::SignatureMismatch => "signature_mismatch",
            CryptoError::InvalidAesKey(_) => "invalid_aes_key",
            CryptoError::ReceiveIdMismatch => "receive_id_mismatch",
            CryptoError::Base64Decode => "bad_base64",
            CryptoError::CiphertextLength(_) => "impossible_length",
            CryptoError::BadPadding => "bad_padding",
            CryptoError::BadPlaintext(_) => "bad_plaintext",
        }
    }
}

/// A validated EncodingAESKey: once one exists, it decodes to exactly 32 bytes. The expanded
/// AES key schedule is kept with it, so that each message does not expand the key again.
#[derive(Clone)]
pub struct EncodingAesKey {
    text: String,
    key: [u8; 32],
    cipher: aes::Aes256,
}

impl PartialEq for EncodingAesKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for EncodingAesKey {}

impl EncodingAesKey {
    /// Parses the 43-character key from the WeCom console.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let len = text.chars().count();
        if len != 43 {
            return Err(CryptoError::InvalidAesKey(format!(
                "must be 43 base64 characters, got {len}"
            )));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/'))
        {
            return Err(CryptoError::InvalidAesKey(format!(
                "character {bad:?} is not in the base64 alphabet"
            )));
        }
        let bytes = LENIENT
            .decode(format!("{text}="))
            .map_err(|e| CryptoError::InvalidAesKey(format!("not base64: {e}")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidAesKey("does not decode to 32 bytes".into()))?;
        Ok(Self::with_text(text.to_owned(), key))
    }

    fn with_text(text: String, key: [u8; 32]) -> Self {
        let cipher = aes::Aes256::new(&key.into());
        Self { text, key, cipher }
    }

    /// Makes a key from 32 random bytes (for `trumpet keygen` and first start).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(key);
        Self::with_text(text, key)
    }

    /// The 43 characters to paste into the WeCom console.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }
}

impl fmt::Debug for EncodingAesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodingAesKey([redacted])")
    }
}

/// A decrypted message and the receive id that followed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub message: String,
    pub receive_id: String,
}

/// Computes `msg_signature`: lowercase hex SHA-1 over the four strings sorted bytewise.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    hex::encode(signature_bytes(token, timestamp, nonce, encrypt))
}

fn signature_bytes(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> [u8; 20] {
    let mut parts = [
        token.as_bytes(),
        timestamp.as_bytes(),
        nonce.as_bytes(),
        encrypt.as_bytes(),
    ];
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Checks `msg_signature` in constant time. Upper-case hex is accepted.
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    msg_signature: &str,
) -> Result<(), CryptoError> {
    let mut given = [0u8; 20];
    if hex::decode_to_slice(msg_signature, &mut given).is_err() {
        return Err(CryptoError::SignatureMismatch);
    }
    let expected = signature_bytes(token, timestamp, nonce, encrypt);
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(CryptoError::SignatureMismatch)
    }
}

/// Encrypts `message` for `receive_id` with the given 16 random bytes; returns base64.
pub fn encrypt(
    key: &EncodingAesKey,
    random: [u8; 16],
    message: &str,
    receive_id: &str,
) -> Result<String, CryptoError> {
    let msg = message.as_bytes();
    let msg_len = u32::try_from(msg.len()).map_err(|_| CryptoError::BadPlaintext("too long"))?;
    let body_len = HEADER_LEN + msg.len() + receive_id.len();
    let pad = PAD_BLOCK - body_len % PAD_BLOCK; // 1..=32: a whole block when already aligned
    let mut buf = Vec::with_capacity(body_len + pad);
    buf.extend_from_slice(&random);
    buf.extend_from_slice(&msg_len.to_be_bytes());
    buf.extend_from_slice(msg);
    buf.extend_from_slice(receive_id.as_bytes());
    buf.resize(body_len + pad, pad as u8);
    let total = buf.len();
    Aes256CbcEnc::inner_iv_init(key.cipher.clone(), &key.iv().into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, total)
        .map_err(|_| CryptoError::BadPlaintext("buffer is not block aligned"))?;
    Ok(base64_simd::STANDARD.encode_to_string(&buf))
}

/// Decrypts a base64 ciphertext and checks the receive id when `expected_receive_id` is
/// non-empty.
pub fn decrypt(
    key: &EncodingAesKey,
    encrypted: &str,
    expected_receive_id: &str,
) -> Result<Decrypted, CryptoError> {
    let encrypted = encrypted.trim();
    // SIMD base64 for the hot path; the lenient decoder for anything it refuses (non-zero
    // trailing bits, missing padding), so that both accept exactly what WeCom's libraries do.
    let mut buf = match base64_simd::STANDARD.decode_to_vec(encrypted) {
        Ok(buf) => buf,
        Err(_) => LENIENT
            .decode(encrypted)
            .map_err(|_| CryptoError::Base64Decode)?,
    };
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(CryptoError::CiphertextLength(buf.len()));
    }
    let plain = Aes256CbcDec::inner_iv_init(key.cipher.clone(), &key.iv().into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::CiphertextLength(encrypted.len()))?;
    let unpadded_len = strip_padding(plain)?.len();
    if unpadded_len < HEADER_LEN {
        return Err(CryptoError::BadPlaintext("shorter than the 20-byte header"));
    }
    let len_bytes: [u8; 4] = buf[16..HEADER_LEN]
        .try_into()
        .map_err(|_| CryptoError::BadPlaintext("no length field"))?;
    let msg_len = u32::from_be_bytes(len_bytes) as usize;
    if msg_len > unpadded_len - HEADER_LEN {
        return Err(CryptoError::BadPlaintext(
            "message length exceeds the buffer",
        ));
    }
    let msg_end = HEADER_LEN + msg_len;
    let receive_id = std::str::from_utf8(&buf[msg_end..unpadded_len])
        .map_err(|_| CryptoError::BadPlaintext("receive id is not UTF-8"))?
        .to_owned();
    if !expected_receive_id.is_empty() && receive_id != expected_receive_id {
        return Err(CryptoError::ReceiveIdMismatch);
    }
    // Reuse the buffer for the message rather than copying it out.
    buf.truncate(msg_end);
    buf.drain(..HEADER_LEN);
    let message =
        String::from_utf8(buf).map_err(|_| CryptoError::BadPlaintext("message is not UTF-8"))?;
    Ok(Decrypted {
        message,
        receive_id,
    })
}

fn strip_padding(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let pad = *plain.last().ok_or(CryptoError::BadPadding)? as usize;
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::BadPadding);
    }
    let (body, padding) = plain.split_at(plain.len() - pad);
    if padding.iter().any(|&b| b as usize != pad) {
        return Err(CryptoError::BadPadding);
    }
    Ok(body)
}

/// The callback parameters of one bot, bundled so handlers can sign, verify, encrypt and decrypt.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: EncodingAesKey,
    receive_id: String,
}

impl CallbackCrypto {
    pub fn new(token: &str, key: EncodingAesKey, receive_id: &str) -> Self {
        Self {
            token: token.to_owned(),
            key,
            receive_id: receive_id.to_owned(),
        }
    }

    pub fn verify(
        &self,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
        msg_signature: &str,
    ) -> Result<(), CryptoError> {
        verify_signature(&self.token, timestamp, nonce, encrypt, msg_signature)
    }

    pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature(&self.token, timestamp, nonce, encrypt)
    }

    pub fn decrypt(&self, encrypted: &str) -> Result<Decrypted, CryptoError> {
        decrypt(&self.key, encrypted, &self.receive_id)
    }

    pub fn encrypt(&self, random: [u8; 16], message: &str) -> Result<String, CryptoError> {
        encrypt(&self.key, random, message, &self.receive_id)
    }
}

impl fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("token", &"[redacted]")
            .field("key", &"[redacted]")
            .field("receive_id", &self.receive_id)
            .finish()
    }
}

#[cfg(test)]
mod tests;
