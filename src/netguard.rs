//! The guard against server-side request forgery: callback URLs must be http(s) and must not
//! reach loopback, private, link-local or otherwise internal addresses, unless the configuration
//! allows it. Checked when a callback URL is accepted (literal addresses and `localhost`) and again
//! when it is resolved for delivery (every address the name resolves to).

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Returns true for an address on the public internet.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Why a callback URL is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("URL should be a valid http or https URL")]
    NotHttp,
    #[error("URL must not point at a private or loopback address")]
    Private,
}

/// Checks a callback URL as far as can be done without DNS.
pub fn check_callback_url(raw: &str, allow_private: bool) -> Result<url::Url, UrlRefusal> {
    let url = url::Url::parse(raw).map_err(|_| UrlRefusal::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) || raw.len() > 2048 {
        return Err(UrlRefusal::NotHttp);
    }
    if allow_private {
        return Ok(url);
    }
    let private = match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            domain == "localhost"
                || domain.ends_with(".localhost")
                || domain.ends_with(".internal")
                || domain.ends_with(".local")
        }
        None => true,
    };
    if private { Err(UrlRefusal::Private) } else { Ok(url) }
}

/// A DNS resolver that refuses names resolving to any non-public address, so a public-looking
/// name cannot smuggle a delivery into the internal network.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|addr| !is_public_ip(addr.ip())) {
                return Err(format!("{host} resolves to a private or loopback address").into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for raw in [
            "http://127.0.0.1/x",
            "http://localhost:8080/x",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            assert_eq!(check_callback_url(raw, false).unwrap_err(), UrlRefusal::Private, "{raw}");
            assert!(check_callback_url(raw, true).is_ok(), "{raw} allowed by config");
        }
    }

    #[test]
    fn only_http_urls_are_accepted() {
        for raw in ["ftp://example.com/x", "example.com/x", "", "javascript:alert(1)", "http://"] {
            assert_eq!(check_callback_url(raw, true).unwrap_err(), UrlRefusal::NotHttp, "{raw}");
        }
        assert!(check_callback_url("https://example.com/webhooks/indus/click2call", false).is_ok());
        assert!(check_callback_url("http://93.184.216.34/hook", false).is_ok());
    }
}
