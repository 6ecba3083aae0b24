//! Where connectors may send requests (`[outbound]` in the configuration).
//!
//! An admin names the EAM's URL, and the connector sends credentials there.
//! Redirects are never followed (an EAM's REST API does not redirect its
//! calls; following one would carry the credential headers to another
//! host), no `Referer` is sent, and link-local destinations (cloud metadata
//! endpoints such as 169.254.169.254, `fe80::/10`) are refused unless
//! allowed. Loopback is allowed by default, for an EAM reached through a
//! local proxy or sidecar, and can be refused. Names are checked after DNS
//! resolution, by the client's resolver; literal addresses when the
//! connector is saved and when it is used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Which destinations outbound requests may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundPolicy {
    pub allow_loopback: bool,
    pub allow_link_local: bool,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self { allow_loopback: true, allow_link_local: false }
    }
}

impl OutboundPolicy {
    /// Whether a request may go to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let loopback = ip.is_loopback() || ip.is_unspecified();
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        (self.allow_loopback || !loopback) && (self.allow_link_local || !link_local)
    }

    /// Checks a URL whose host is a literal address (names are checked when
    /// they are resolved).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{url}: only http and https are allowed"));
        }
        let host = parsed.host_str().unwrap_or_default();
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        match ip {
            Some(ip) if !self.allows(ip) => Err(format!(
                "{url}: the address {ip} is not an allowed destination (outbound.allow_loopback, \
                 outbound.allow_link_local)"
            )),
            _ => Ok(()),
        }
    }
}

/// The client's resolver: the system's, with destinations the policy
/// refuses removed (a name that resolves only to them does not resolve).
pub struct PolicyResolver(pub OutboundPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() && !all.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to addresses that outbound requests may not reach").into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client of every connector: no redirects, no `Referer`, and
/// the destination policy applied to every name it resolves.
pub fn client(policy: OutboundPolicy) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("workbridge/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_refused_and_loopback_is_a_setting() {
        let default = OutboundPolicy::default();
        assert!(default.allows("127.0.0.1".parse().unwrap()));
        assert!(default.allows("10.1.2.3".parse().unwrap()));
        assert!(!default.allows("169.254.169.254".parse().unwrap()));
        assert!(!default.allows("fe80::1".parse().unwrap()));
        assert!(!default.allows("::ffff:169.254.169.254".parse().unwrap()));
        assert!(default.check_url("http://169.254.169.254/latest/meta-data").is_err());
        assert!(default.check_url("http://[fe80::1]:8080/x").is_err());
        assert!(default.check_url("https://maximo.example.com/maximo").is_ok());
        assert!(default.check_url("file:///etc/passwd").is_err());
        let strict = OutboundPolicy { allow_loopback: false, allow_link_local: false };
        assert!(!strict.allows("127.0.0.1".parse().unwrap()));
        assert!(!strict.allows("::1".parse().unwrap()));
        assert!(!strict.allows("0.0.0.0".parse().unwrap()));
        assert!(strict.check_url("http://127.0.0.1:9000/api").is_err());
    }
}
