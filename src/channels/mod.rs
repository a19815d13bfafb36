//! Channels: the handlers each peer talks to — the WeCom group robot's callbacks ([`robot`]),
//! OneBot 12 implementations over a reverse WebSocket or webhook ([`onebot`], with its roster
//! sync and the hub as the runtime's bot accounts), and the WeCom AI bot's long connection, which
//! the service dials itself ([`aibot`]), or its URL callbacks ([`aibot_callback`]), and a self-built app's customer groups ([`app`]). Each turns what a peer sends into domain
//! events for the runtime and answers on the peer's own terms; the wire formats and clients they
//! use are [`crate::wire`]. Each channel serves its routes with its own state; `http` merges
//! them beside the admin API.
//!
//! Shared here: how a request that cannot be taken is answered, the bearer token of an
//! `Authorization` header, and text from outside made safe for the log ([`untrusted`]).

pub mod aibot;
pub mod aibot_callback;
pub mod app;
pub mod group_names;
pub mod onebot;
pub mod robot;
pub mod untrusted;

/// Largest callback body accepted; WeCom's are a few kilobytes.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;

/// Whether `error`, or what caused it, is a request body that did not arrive in time.
fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The answer to a request whose body could not be read: 408 when it did not arrive in time,
/// 413 when it was too large (`status` says so), else 400 with `reason`.
pub(crate) fn body_refusal(
    status: axum::http::StatusCode,
    error: &(dyn std::error::Error + 'static),
    reason: String,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let (status, reason) = if is_body_timeout(error) {
        (
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time".to_owned(),
        )
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large".to_owned(),
        )
    } else {
        (StatusCode::BAD_REQUEST, reason)
    };
    (status, axum::Json(serde_json::json!({ "error": reason }))).into_response()
}

/// The answer to an event that was not accepted (nothing of it kept): 503, with `Retry-After`
/// when the service was only too busy to keep it in time.
pub(crate) fn not_accepted(e: &crate::runtime::inbound::NotAccepted) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match e {
        crate::runtime::inbound::NotAccepted::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
        )
            .into_response(),
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The answer to a WeCom callback that failed its checks (`e.status()`: 401 for what fails
/// authentication, 400 for what cannot be read), logged with its class and WXBizMsgCrypt code.
pub(crate) fn refuse_callback(
    bot: &str,
    e: &crate::wire::wecom::robot::CallbackError,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::warn!(bot = %bot, class = e.class(), code = ?e.code(), error = %e, "callback refused");
    axum::http::StatusCode::from_u16(e.status())
        .unwrap_or(axum::http::StatusCode::BAD_REQUEST)
        .into_response()
}

/// The body and signed query of a WeCom callback POST, read and checked — or the answer that
/// refuses it (a body that did not arrive or is too large; a query without its signature).
pub(crate) fn callback_input(
    bot: &str,
    query: Option<&str>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<
    (crate::wire::wecom::robot::CallbackQuery, axum::body::Bytes),
    Box<axum::response::Response>,
> {
    let body = body.map_err(|e| {
        tracing::warn!(bot = %bot, error = %e, "callback body not read");
        Box::new(body_refusal(e.status(), &e, e.body_text()))
    })?;
    let query = crate::wire::wecom::robot::parse_query(query, false)
        .map_err(|e| Box::new(refuse_callback(bot, &e)))?;
    Ok((query, body))
}

/// The answer to WeCom's URL verification: the bare plaintext of `echostr` (no quotes, no
/// newline), or the refusal.
pub(crate) fn verification_answer(
    bot: &str,
    verified: Result<String, crate::wire::wecom::robot::CallbackError>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match verified {
        Ok(plaintext) => {
            tracing::info!(bot = %bot, "callback URL verified");
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )],
                plaintext,
            )
                .into_response()
        }
        Err(e) => refuse_callback(bot, &e),
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235: `bearer`, `BEARER`), the token is what follows it, trimmed.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}
