//! The network edge: what every request passes before any route sees it, and what every
//! response carries.
//!
//! - Host allowlist: a request whose `Host` (or absolute-form authority) is not one of the
//!   names this server answers to gets 421. This is what defeats DNS rebinding: a web page
//!   on `evil.example` that re-points its own name at 127.0.0.1 still sends
//!   `Host: evil.example`. Answered: `localhost`, `127.0.0.1`, `[::1]`, the bind address's
//!   host, the names in `allowed_hosts` (any port), and, when bound to every interface
//!   (`0.0.0.0`, `[::]`), any IP address (an address cannot be re-pointed like a name).
//!   A request without a Host header passes: browsers always send one (HTTP/1.1 requires
//!   it, HTTP/2 sends `:authority`), so its absence means a program, which could have sent
//!   any Host it liked; in-process tests omit it too.
//! - Cross-site refusal: a state-changing request (any method but GET, HEAD, OPTIONS,
//!   TRACE) from a browser page of another origin gets 403: an `Origin` that is neither this
//!   server's (scheme and the request's own Host) nor in `cors_origins` (`null` included),
//!   or `Sec-Fetch-Site: cross-site` / `same-site` without such an origin. Programs send
//!   neither header and pass.
//! - CORS headers only for the origins in `cors_origins` (none by default).
//! - Security headers on every response: `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer`, and a Content-Security-Policy unless the route set its
//!   own (the portal's, the originals' `sandbox`): `default-src 'none'; frame-ancestors
//!   'none'`, since no API response is meant to run or be framed.

use super::error::ApiError;
use crate::config::Config;
use crate::hosts::{parse_origin, split_host_port, AllowedHost, CorsOrigin};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::IpAddr;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// The CSP of responses whose route sets none (JSON, errors, metrics, health).
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Host names always answered: this machine's loopback names.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Where a state-changing request's `Origin` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OriginKind {
    /// This server's own origin: the page was served by it.
    Own,
    /// An origin listed in `cors_origins`.
    Trusted,
    /// Anything else, `null` included (sandboxed documents, cross-origin redirects).
    Foreign,
}

/// The edge's rules, from the configuration.
#[derive(Debug, Clone)]
pub struct EdgePolicy {
    hosts: Vec<AllowedHost>,
    /// Bound to every interface: any IP address is answered.
    any_address: bool,
    cors_origins: Vec<CorsOrigin>,
}

impl EdgePolicy {
    pub fn from_config(config: &Config) -> EdgePolicy {
        let mut hosts: Vec<AllowedHost> = LOOPBACK_HOSTS
            .iter()
            .map(|h| AllowedHost::Exact((*h).to_string()))
            .collect();
        let mut any_address = false;
        if let Some((host, _)) = split_host_port(config.bind.trim()) {
            let unspecified = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified());
            if unspecified {
                any_address = true;
            } else {
                hosts.push(AllowedHost::Exact(host));
            }
        }
        hosts.extend(config.allowed_hosts.iter().cloned());
        EdgePolicy {
            hosts,
            any_address,
            cors_origins: config.cors_origins.clone(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        (self.any_address && is_ip_literal(host)) || self.hosts.iter().any(|h| h.matches(host))
    }

    /// Passes the request, or says why not (400, 421, 403).
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let mut host_values = headers.get_all(header::HOST).iter();
        let host_header = host_values.next();
        if host_values.next().is_some() {
            return Err(ApiError::BadRequest("several Host headers".into()));
        }
        // Absolute-form targets (`POST http://name/...`) name the host in the URI; it
        // takes precedence over Host (RFC 9112 3.2.2), so both are checked.
        let mut host = None;
        for value in host_header
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
            .into_iter()
            .chain(uri.authority().map(|a| a.as_str()))
        {
            let Some((name, port)) = split_host_port(value) else {
                return Err(ApiError::BadRequest(format!(
                    "invalid Host {:?}",
                    shorten(value)
                )));
            };
            if !self.host_allowed(&name) {
                tracing::warn!(host = %shorten(value), %method, path = uri.path(), "refused: host not allowed");
                return Err(ApiError::MisdirectedRequest(format!(
                    "this server does not answer to the host name {:?}; if that name is \
                     meant to reach it, an administrator adds it to allowed_hosts",
                    shorten(&name)
                )));
            }
            host.get_or_insert((name, port));
        }
        if method.is_safe() {
            return Ok(());
        }
        let origin = headers
            .get(header::ORIGIN)
            .map(|v| self.classify_origin(v, host.as_ref()));
        let fetch_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let refused = match (fetch_site.as_deref(), origin) {
            (_, Some(OriginKind::Foreign)) => true,
            (Some("cross-site"), o) => o != Some(OriginKind::Trusted),
            (Some("same-site"), o) => o.is_none(),
            _ => false,
        };
        if refused {
            let origin = headers
                .get(header::ORIGIN)
                .map(|v| shorten(v.to_str().unwrap_or("(not text)")));
            tracing::warn!(?origin, fetch_site = ?fetch_site, %method, path = uri.path(), "refused: cross-site request");
            return Err(ApiError::Forbidden(format!(
                "cross-site request refused: {method} from another site's page (Origin {}) \
                 may not change anything here; a web application that should call this API \
                 is listed in cors_origins",
                origin.as_deref().unwrap_or("not sent")
            )));
        }
        Ok(())
    }

    fn classify_origin(
        &self,
        value: &HeaderValue,
        host: Option<&(String, Option<u16>)>,
    ) -> OriginKind {
        let Some(origin) = value.to_str().ok().and_then(parse_origin) else {
            return OriginKind::Foreign;
        };
        if self.cors_origins.iter().any(|o| o.0 == origin) {
            return OriginKind::Trusted;
        }
        // Own origin: the same host and port as the request (http, or https behind a TLS
        // proxy). The Host's port is absent when it is the scheme's default.
        let own = host.is_some_and(|(name, port)| {
            ["http", "https"].iter().any(|scheme| {
                let with_port = parse_origin(&match port {
                    Some(p) => format!("{scheme}://{name}:{p}"),
                    None => format!("{scheme}://{name}"),
                });
                with_port.as_deref() == Some(origin.as_str())
            })
        });
        if own {
            OriginKind::Own
        } else {
            OriginKind::Foreign
        }
    }

    /// CORS for the configured origins; `None` when there are none (no CORS headers).
    fn cors(&self) -> Option<CorsLayer> {
        let origins: Vec<HeaderValue> = self
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(&o.0).ok())
            .collect();
        (!origins.is_empty()).then(|| {
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .max_age(std::time::Duration::from_secs(600))
        })
    }
}

fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// Request-supplied text quoted in a message or log line, bounded.
fn shorten(s: &str) -> String {
    s.chars().take(100).collect()
}

async fn guard(State(policy): State<Arc<EdgePolicy>>, request: Request, next: Next) -> Response {
    match policy.check(request.method(), request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// Wraps `router` in the edge: the host and cross-site checks, CORS when configured, and
/// the security headers on every response (refusals included).
pub fn protect(router: Router, config: &Config) -> Router {
    let policy = EdgePolicy::from_config(config);
    let router = match policy.cors() {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(policy),
            guard,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLayer;

    fn policy(bind: &str, toml: &str) -> EdgePolicy {
        let file: ConfigLayer = toml::from_str(toml).expect("valid toml");
        let mut config = Config::load(None, file).expect("config");
        config.bind = bind.into();
        EdgePolicy::from_config(&config)
    }

    fn request(host: Option<&str>, headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(h) = host {
            map.insert(header::HOST, HeaderValue::from_str(h).expect("host"));
        }
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    fn status(p: &EdgePolicy, method: Method, host: Option<&str>, h: &[(&str, &str)]) -> u16 {
        match p.check(&method, &Uri::from_static("/api/ask"), &request(host, h)) {
            Ok(()) => 200,
            Err(ApiError::BadRequest(_)) => 400,
            Err(ApiError::Forbidden(_)) => 403,
            Err(ApiError::MisdirectedRequest(_)) => 421,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    use axum::http::HeaderName;

    #[test]
    fn loopback_and_bind_hosts_pass_on_any_port_and_others_are_misdirected() {
        let p = policy("127.0.0.1:8080", "");
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:9999",
            "LOCALHOST.",
            "[::1]:8080",
            "[0:0:0:0:0:0:0:1]",
        ] {
            let expected = if host.starts_with("[0:") { 421 } else { 200 };
            assert_eq!(status(&p, Method::GET, Some(host), &[]), expected, "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.5:8080",
        ] {
            assert_eq!(status(&p, Method::GET, Some(host), &[]), 421, "{host}");
        }
        // Not a host at all, or two of them: malformed.
        for host in ["a b", "host:port", "[::1", "user@127.0.0.1"] {
            assert_eq!(status(&p, Method::GET, Some(host), &[]), 400, "{host}");
        }
        let two = request(Some("127.0.0.1"), &[("host", "evil.example")]);
        assert!(matches!(
            p.check(&Method::GET, &Uri::from_static("/"), &two),
            Err(ApiError::BadRequest(_))
        ));
        // No Host (a program, or an in-process test): nothing for a rebinding page to abuse.
        assert_eq!(status(&p, Method::GET, None, &[]), 200);
        // An absolute-form target names its host in the URI: checked like Host.
        let absolute = Uri::from_static("http://evil.example/api/documents");
        assert!(matches!(
            p.check(&Method::GET, &absolute, &request(Some("127.0.0.1"), &[])),
            Err(ApiError::MisdirectedRequest(_))
        ));
    }

    #[test]
    fn configured_names_and_every_address_when_bound_to_all() {
        let p = policy(
            "lore.internal:8080",
            "allowed_hosts = [\"docs.example.com\", \"*.corp.example\"]",
        );
        for host in [
            "lore.internal",
            "docs.example.com:443",
            "wiki.corp.example",
            "a.b.corp.example",
        ] {
            assert_eq!(status(&p, Method::GET, Some(host), &[]), 200, "{host}");
        }
        for host in ["corp.example", "evilcorp.example", "10.0.0.5"] {
            assert_eq!(status(&p, Method::GET, Some(host), &[]), 421, "{host}");
        }
        // 0.0.0.0: reached by any of the machine's addresses; names still need listing.
        let p = policy("0.0.0.0:8080", "");
        for host in ["10.0.0.5:8080", "[fe80::1]:8080", "localhost"] {
            assert_eq!(status(&p, Method::GET, Some(host), &[]), 200, "{host}");
        }
        assert_eq!(
            status(&p, Method::GET, Some("0.0.0.0.evil.example"), &[]),
            421
        );
        assert_eq!(
            status(&policy("[::]:8080", ""), Method::GET, Some("10.1.2.3"), &[]),
            200
        );
        let any = policy("127.0.0.1:8080", "allowed_hosts = [\"*\"]");
        assert_eq!(
            status(&any, Method::GET, Some("anything.example"), &[]),
            200
        );
    }

    #[test]
    fn bad_settings_are_rejected_with_the_key_named() {
        for bad in ["lore.example:8080", "http://lore.example", "a b", ""] {
            let err = bad.parse::<AllowedHost>().expect_err(bad);
            assert!(err.contains("allowed_hosts"), "{err}");
        }
        let err = toml::from_str::<ConfigLayer>("allowed_hosts = [\"x:1\"]").expect_err("port");
        assert!(err.to_string().contains("port"), "{err}");
        for bad in ["wiki.example.com", "ftp://x", "https://x/path", "https://"] {
            let err = bad.parse::<CorsOrigin>().expect_err(bad);
            assert!(err.contains("cors_origins"), "{err}");
        }
        assert_eq!(
            "HTTPS://Wiki.Example.com:443/"
                .parse::<CorsOrigin>()
                .expect("origin")
                .to_string(),
            "https://wiki.example.com"
        );
    }

    #[test]
    fn state_changing_requests_from_other_sites_are_refused() {
        let p = policy(
            "127.0.0.1:8080",
            "cors_origins = [\"https://wiki.example.com\"]",
        );
        let host = Some("127.0.0.1:8080");
        let post = |h: &[(&str, &str)]| status(&p, Method::POST, host, h);
        // Programs (curl, SDKs) send neither header.
        assert_eq!(post(&[]), 200);
        // The portal itself.
        assert_eq!(
            post(&[
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin")
            ]),
            200
        );
        assert_eq!(post(&[("origin", "https://127.0.0.1:8080")]), 200);
        // Other sites, a sandboxed page (null), another port, a sibling subdomain.
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:9090",
            "http://localhost:8080",
            "not an origin",
        ] {
            assert_eq!(post(&[("origin", origin)]), 403, "{origin}");
            assert_eq!(
                status(&p, Method::DELETE, host, &[("origin", origin)]),
                403,
                "{origin}"
            );
            // Reading is not refused here (the browser keeps the answer from that page).
            assert_eq!(status(&p, Method::GET, host, &[("origin", origin)]), 200);
        }
        assert_eq!(post(&[("sec-fetch-site", "cross-site")]), 403);
        assert_eq!(post(&[("sec-fetch-site", "same-site")]), 403);
        assert_eq!(
            post(&[
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site")
            ]),
            403
        );
        assert_eq!(post(&[("sec-fetch-site", "none")]), 200);
        // A configured web application may call the API.
        assert_eq!(
            post(&[
                ("origin", "https://wiki.example.com"),
                ("sec-fetch-site", "cross-site")
            ]),
            200
        );
        // Without a Host, no origin is this server's own.
        assert_eq!(
            status(
                &p,
                Method::POST,
                None,
                &[("origin", "http://127.0.0.1:8080")]
            ),
            403
        );
    }

    /// CORS headers appear only for configured origins; security headers always.
    #[tokio::test]
    async fn cors_only_for_configured_origins() {
        use tower::ServiceExt;
        let preflight = |router: Router, origin: &str| {
            let request = Request::builder()
                .method(Method::OPTIONS)
                .uri("/api/search")
                .header("host", "127.0.0.1:8080")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .body(axum::body::Body::empty())
                .expect("request");
            async move { router.oneshot(request).await.expect("response") }
        };
        let routes = || Router::new().route("/api/search", axum::routing::post(|| async { "ok" }));
        let mut config = Config::load(None, ConfigLayer::default()).expect("config");
        let plain = protect(routes(), &config);
        let response = preflight(plain, "https://wiki.example.com").await;
        assert!(!response
            .headers()
            .contains_key("access-control-allow-origin"));
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");

        config.cors_origins = vec!["https://wiki.example.com".parse().expect("origin")];
        let with_cors = protect(routes(), &config);
        let response = preflight(with_cors.clone(), "https://wiki.example.com").await;
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://wiki.example.com"
        );
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        let response = preflight(with_cors, "http://evil.example").await;
        assert!(!response
            .headers()
            .contains_key("access-control-allow-origin"));
    }
}
