//! The AI bot's URL-callback mode, for corps that prefer it to the long connection: WeCom POSTs
//! `{"encrypt": …}` to a public URL, signed and encrypted as the robot's callbacks are (receive
//! id: the empty string), and the decrypted message is the same JSON as a long-connection
//! callback's body. The answer is encrypted JSON
//! (`{"encrypt", "msgsignature", "timestamp", "nonce"}`) whose plaintext is a finished stream —
//! or, for `enter_chat`, a text. URL verification (GET) is the robot's.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{Callback, MAX_STREAM_BYTES, reply_contents};
use crate::domain::{BotId, Event, Reply};
use crate::wire::wecom::crypto::{CallbackCrypto, CryptoError};
use crate::wire::wecom::robot::{CallbackError, CallbackQuery, RobotEndpoint};

/// One URL-mode AI bot's endpoint.
#[derive(Debug, Clone)]
pub struct AiBotEndpoint {
    /// Timestamps, signatures and URL verification are the robot's.
    inner: RobotEndpoint,
}

/// What an opened callback is.
#[derive(Debug)]
pub enum OpenedCallback {
    /// A message or event for the engine (boxed: an event is large, a refresh small).
    Event(Box<Event>),
    /// WeCom asking for more of a stream (`msgtype: "stream"`, its `stream.id`): Trumpet's
    /// streams are finished in their first answer, so there is never more.
    StreamRefresh { stream_id: String },
}

#[derive(Deserialize)]
struct Envelope {
    encrypt: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StreamRef {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Refresh {
    msgtype: String,
    stream: Option<StreamRef>,
}

impl AiBotEndpoint {
    pub fn new(bot: BotId, crypto: CallbackCrypto, tolerance_secs: u64) -> Self {
        Self {
            inner: RobotEndpoint::new(bot, crypto, tolerance_secs),
        }
    }

    pub fn bot(&self) -> &BotId {
        &self.inner.bot
    }

    /// URL verification: the plaintext of `echostr`, as for the robot.
    pub fn verify_url(&self, query: &CallbackQuery, now: i64) -> Result<String, CallbackError> {
        self.inner.verify_url(query, now)
    }

    /// Opens a POST: timestamp, JSON envelope, signature (before decrypting), decryption, then
    /// the callback.
    pub fn open(
        &self,
        query: &CallbackQuery,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<OpenedCallback, CallbackError> {
        self.inner.check_timestamp(query, now.timestamp())?;
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| CallbackError::Json(format!("envelope: {e}")))?;
        let crypto = &self.inner.crypto;
        crypto
            .verify(
                &query.timestamp,
                &query.nonce,
                &envelope.encrypt,
                &query.msg_signature,
            )
            .map_err(CallbackError::Crypto)?;
        let opened = crypto
            .decrypt(&envelope.encrypt)
            .map_err(CallbackError::Crypto)?;
        let refresh: Refresh = serde_json::from_str(&opened.message)
            .map_err(|e| CallbackError::Json(format!("message: {e}")))?;
        if refresh.msgtype == "stream" {
            return Ok(OpenedCallback::StreamRefresh {
                stream_id: refresh.stream.unwrap_or_default().id,
            });
        }
        let callback: Callback = serde_json::from_str(&opened.message)
            .map_err(|e| CallbackError::Json(format!("message: {e}")))?;
        callback
            .into_event(self.bot(), now)
            .map(|event| OpenedCallback::Event(Box::new(event)))
            .map_err(|e| CallbackError::Json(e.to_string()))
    }

    /// The encrypted answer carrying `reply`: a finished stream with id `stream_id` (its first
    /// [`MAX_STREAM_BYTES`]; one answer carries one message), or a text for a welcome.
    pub fn seal(
        &self,
        reply: &Reply,
        welcome: bool,
        stream_id: &str,
        query: &CallbackQuery,
        random: [u8; 16],
    ) -> Result<String, CryptoError> {
        let content = reply_contents(reply).into_iter().next().unwrap_or_default();
        debug_assert!(content.len() <= MAX_STREAM_BYTES);
        let plaintext = if welcome {
            json!({ "msgtype": "text", "text": { "content": content } })
        } else {
            json!({
                "msgtype": "stream",
                "stream": { "id": stream_id, "finish": true, "content": content },
            })
        };
        self.seal_plaintext(&plaintext.to_string(), query, random)
    }

    /// The encrypted answer to a stream refresh: the stream, finished, with nothing more.
    pub fn seal_finished(
        &self,
        stream_id: &str,
        query: &CallbackQuery,
        random: [u8; 16],
    ) -> Result<String, CryptoError> {
        let plaintext = json!({
            "msgtype": "stream",
            "stream": { "id": stream_id, "finish": true },
        });
        self.seal_plaintext(&plaintext.to_string(), query, random)
    }

    fn seal_plaintext(
        &self,
        plaintext: &str,
        query: &CallbackQuery,
        random: [u8; 16],
    ) -> Result<String, CryptoError> {
        let crypto = &self.inner.crypto;
        let encrypt = crypto.encrypt(random, plaintext)?;
        let signature = crypto.sign(&query.timestamp, &query.nonce, &encrypt);
        // The timestamp is a number in this answer (parse_query made it 1–12 digits).
        let timestamp: i64 = query.timestamp.parse().unwrap_or_default();
        Ok(json!({
            "encrypt": encrypt,
            "msgsignature": signature,
            "timestamp": timestamp,
            "nonce": query.nonce,
        })
        .to_string())
    }
}
