//! Host names and web origins as the configuration holds them (`allowed_hosts`,
//! `cors_origins`): parsed and normalised once, when the configuration loads, so a bad entry
//! stops start-up with its reason. The server's edge (`serve::edge`) matches requests
//! against them.

use std::net::Ipv6Addr;

/// One entry of `allowed_hosts`: a host name or IP address (any port; IPv6 in brackets),
/// `*.example.com` for every name under `example.com`, or `*` for any host (only behind a
/// proxy that checks Host itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum AllowedHost {
    Any,
    /// A name under this domain (the value starts with a dot: `.example.com`).
    Under(String),
    /// Exactly this host (lowercase, no trailing dot).
    Exact(String),
}

impl std::str::FromStr for AllowedHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(AllowedHost::Any);
        }
        if let Some(domain) = s.strip_prefix("*.") {
            let domain = normal_host(domain).ok_or_else(|| bad_host(s))?;
            return Ok(AllowedHost::Under(format!(".{domain}")));
        }
        match split_host_port(s) {
            Some((host, None)) => Ok(AllowedHost::Exact(host)),
            Some((_, Some(_))) => Err(format!(
                "allowed_hosts entry {s:?} has a port: give the host alone (any port is answered)"
            )),
            None => Err(bad_host(s)),
        }
    }
}

impl TryFrom<String> for AllowedHost {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowedHost::Any => f.write_str("*"),
            AllowedHost::Under(domain) => write!(f, "*{domain}"),
            AllowedHost::Exact(host) => f.write_str(host),
        }
    }
}

fn bad_host(s: &str) -> String {
    format!(
        "invalid allowed_hosts entry {s:?}: expected a host name, an IP address ([::1] for \
         IPv6), *.domain or *"
    )
}

impl AllowedHost {
    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            AllowedHost::Any => true,
            AllowedHost::Under(domain) => host.ends_with(domain.as_str()),
            AllowedHost::Exact(name) => name == host,
        }
    }
}

/// One entry of `cors_origins`: `scheme://host[:port]`, the origin of a web application
/// allowed to call the API from the browser.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct CorsOrigin(pub(crate) String);

impl std::str::FromStr for CorsOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_origin(s.trim()).map(CorsOrigin).ok_or_else(|| {
            format!(
                "invalid cors_origins entry {s:?}: expected an origin such as \
                 https://wiki.example.com (scheme, host and optional port; no path)"
            )
        })
    }
}

impl TryFrom<String> for CorsOrigin {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for CorsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `host[:port]` → (lowercase host without a trailing dot, IPv6 kept in brackets; port),
/// or `None` when it is not a plausible host.
pub(crate) fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (normal_host(host)?, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// A registered name or IPv4 address, lowercased, without its trailing dot.
pub(crate) fn normal_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    plausible.then(|| host.to_ascii_lowercase())
}

/// `scheme://host[:port]` (http or https; the default port dropped, as browsers send it)
/// → its normal form, or `None`.
pub(crate) fn parse_origin(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = split_host_port(authority)?;
    Some(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}
