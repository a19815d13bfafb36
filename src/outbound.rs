//! Where the service may fetch from on the word of something outside it — so that a leaked
//! Token or a hostile implementation cannot turn it into a fetcher of internal URLs (blind
//! SSRF). Images are fetched only from listed hosts ([`HostList`]: `wecom.media_hosts`,
//! `onebot.file_hosts`), redirects included; operator-set feeds may go anywhere public, but not to
//! private, loopback or link-local addresses unless `feeds.allow_private` says so
//! ([`PublicOnly`], which checks every address a name resolves to, and every redirect).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Hosts a URL may point at: `host`, `host:port`, or `*.domain` for any subdomain of `domain`.
/// A listed host is fetched over https, or over http on a loopback address (local fakes).
#[derive(Debug, Clone, Default)]
pub struct HostList {
    hosts: Vec<String>,
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a URL")]
    NotAUrl,
    #[error("host {0:?} is not on the list ({1})")]
    HostNotListed(String, &'static str),
    #[error("scheme {0:?} is not allowed (https, or http to a loopback address)")]
    Scheme(String),
    #[error("address {0} is private, loopback or link-local (feeds.allow_private is false)")]
    Private(IpAddr),
}

impl HostList {
    pub fn new(hosts: &[String]) -> Self {
        Self {
            hosts: hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Adds `other`'s hosts.
    pub fn extend(&mut self, other: &HostList) {
        self.hosts.extend(other.hosts.iter().cloned());
    }

    /// Whether `url` may be fetched; `setting` names the list for the error.
    pub fn check(&self, url: &url::Url, setting: &'static str) -> Result<(), Refused> {
        check_listed(&self.hosts, url, setting)
    }

    /// Whether `raw` parses and may be fetched.
    pub fn check_str(&self, raw: &str, setting: &'static str) -> Result<url::Url, Refused> {
        let url = url::Url::parse(raw.trim()).map_err(|_| Refused::NotAUrl)?;
        self.check(&url, setting)?;
        Ok(url)
    }

    /// A redirect policy that follows at most `max` redirects, each to a host of `self`.
    pub fn redirect_policy(self, max: usize, setting: &'static str) -> reqwest::redirect::Policy {
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= max {
                return attempt.error("too many redirects");
            }
            match self.check(attempt.url(), setting) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(format!("redirect refused: {e}")),
            }
        })
    }
}

/// Whether `url` points at one of `hosts` (`host`, `host:port` or `*.domain`, any case) over
/// https, or over http to a loopback address (local fakes); `setting` names the list for the
/// error. The rule for every URL the service reaches on someone else's word: robot webhooks
/// (`wecom.webhook_hosts`), images and `get_file` URLs.
pub fn check_listed(
    hosts: &[String],
    url: &url::Url,
    setting: &'static str,
) -> Result<(), Refused> {
    let host = url.host_str().ok_or(Refused::NotAUrl)?.to_ascii_lowercase();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let listed = hosts.iter().any(|h| match h.strip_prefix("*.") {
        Some(domain) => {
            url.port().is_none()
                && host.len() > domain.len()
                && host.ends_with(&domain.to_ascii_lowercase())
                && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        }
        None => h.eq_ignore_ascii_case(&authority),
    });
    if !listed {
        return Err(Refused::HostNotListed(authority, setting));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        other => Err(Refused::Scheme(other.to_owned())),
    }
}

/// Whether `ip` is an address no public fetch should reach: private, loopback, link-local,
/// unspecified, shared (CGNAT), multicast or documentation ranges, and their IPv6 kin.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1])) // 100.64/10, shared
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Refuses a URL whose host is a literal private address (names are checked when resolved).
pub fn check_public_literal(url: &url::Url) -> Result<(), Refused> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        _ => return Ok(()),
    };
    match is_private(ip) {
        true => Err(Refused::Private(ip)),
        false => Ok(()),
    }
}

/// A resolver that drops private addresses from every answer (and fails when none is left), so
/// that neither a feed's own name nor a redirect's can lead inside.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_private(a.ip()))
                .collect();
            if public.is_empty() {
                let shown = found
                    .first()
                    .map_or("nothing".into(), |a| a.ip().to_string());
                return Err(format!(
                    "{host} resolves to {shown}: private addresses are not fetched (feeds.allow_private)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// A client for operator-set feeds: public addresses only unless `allow_private`.
pub fn feed_client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder().user_agent(concat!(
        "trumpet/",
        env!("CARGO_PKG_VERSION"),
        " (feeds)"
    ));
    builder = if allow_private {
        builder.redirect(reqwest::redirect::Policy::limited(5))
    } else {
        builder
            .dns_resolver(Arc::new(PublicOnly))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 5 {
                    return attempt.error("too many redirects");
                }
                match check_public_literal(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(format!("redirect refused: {e}")),
                }
            }))
    };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn only_listed_hosts_over_https_or_loopback_http() {
        let list = HostList::new(&[
            "wework.qpic.cn".into(),
            "*.qpic.cn".into(),
            "127.0.0.1:9000".into(),
        ]);
        let s = "wecom.media_hosts";
        assert!(
            list.check(&url("https://wework.qpic.cn/wwpic/1/0"), s)
                .is_ok()
        );
        assert!(list.check(&url("https://p.qpic.cn/x"), s).is_ok());
        assert!(list.check(&url("http://127.0.0.1:9000/img"), s).is_ok());
        assert!(matches!(
            list.check(&url("http://wework.qpic.cn/x"), s),
            Err(Refused::Scheme(_))
        ));
        for refused in [
            "https://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:8080/api/v1/groups",
            "https://evil.example.com/a.png",
            "https://qpic.cn.evil.example.com/a.png",
            "https://wework.qpic.cn:8443/a.png",
        ] {
            assert!(list.check(&url(refused), s).is_err(), "{refused}");
        }
    }

    #[test]
    fn private_addresses_are_told_apart() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "101.226.1.1", "2400:da00::1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
        assert!(check_public_literal(&url("http://10.0.0.1/feed")).is_err());
        assert!(check_public_literal(&url("http://localhost:8080/feed")).is_err());
        assert!(check_public_literal(&url("https://example.com/feed")).is_ok());
    }
}
