//! Talking to the running service's admin API from the command line (`trumpet broadcast`,
//! `trumpet simulate`): its base URL, the bearer token from `admin.token`, and errors that say
//! whether the service was there at all.

use serde_json::Value;

use crate::config::Config;

/// What went wrong talking to the service.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("cannot reach the service at {url}: is `trumpet serve` running? ({source})")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the service answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("unexpected answer from the service: {0}")]
    Malformed(String),
}

/// The admin API's base URL: `--server`, else the configured listen address (an unspecified
/// address such as 0.0.0.0 is reached on loopback).
pub fn base_url(config: &Config, server: Option<&str>) -> String {
    if let Some(server) = server {
        return server.trim_end_matches('/').to_owned();
    }
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn call(&self, method: reqwest::Method, path: &str) -> Result<Value, BroadcastError> {
        self.send(method, path, None).await
    }

    /// `method path` with a JSON `body`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, BroadcastError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| BroadcastError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| BroadcastError::Malformed(e.to_string()))?;
        if !status.is_success() {
            let reason = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(body);
            return Err(BroadcastError::Refused {
                status: status.as_u16(),
                body: reason,
            });
        }
        serde_json::from_str(&body).map_err(|e| BroadcastError::Malformed(e.to_string()))
    }
}
