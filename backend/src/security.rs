//! Request-level security decisions, kept as pure functions so they are tested alone.

use axum::http::{HeaderMap, Method};

/// Returns the reason a state-changing request is rejected as cross-site, or `None` when it may
/// proceed.
///
/// A write that carries cookies must come from this site: `Sec-Fetch-Site`, when present, must
/// be `same-origin` (or `none`, a user-typed navigation), and `Origin`, when present, must be
/// the request's own origin or a trusted one. A request with neither header is rejected, because
/// every current browser sends at least one on a cross-site write. Requests with a bearer token
/// are exempt: a cross-site page cannot add an `Authorization` header without a CORS preflight,
/// which this server never grants. `always_check` applies the rule to cookie-less requests too,
/// which the sign-in form needs so that another site cannot sign a victim into its account.
pub fn csrf_violation(
    method: &Method,
    headers: &HeaderMap,
    trusted_origins: &[String],
    always_check: bool,
) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let bearer =
        header_text(headers, "authorization").is_some_and(|value| value.starts_with("Bearer "));
    if bearer {
        return None;
    }
    if !always_check && !headers.contains_key(axum::http::header::COOKIE) {
        return None;
    }

    let fetch_site = header_text(headers, "sec-fetch-site");
    if let Some(site) = fetch_site {
        if site != "same-origin" && site != "none" {
            return Some(format!(
                "cross-site request refused (Sec-Fetch-Site: {site}); send it from this site"
            ));
        }
    }

    match header_text(headers, "origin") {
        Some(origin) => {
            let own = header_text(headers, "host").map(|host| host.to_ascii_lowercase());
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .map(|rest| rest.trim_end_matches('/').to_ascii_lowercase());
            let same = origin_host.is_some() && origin_host == own;
            let trusted = trusted_origins
                .iter()
                .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin));
            if same || trusted {
                None
            } else {
                Some(format!(
                    "cross-site request refused (Origin: {origin}); send it from this site"
                ))
            }
        }
        None if fetch_site.is_some() => None,
        None => Some(
            "request with a session cookie but no Origin header refused; send Origin, or use \
             a bearer token without cookies"
                .to_string(),
        ),
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Checks whether an incoming `X-Request-Id` is safe to adopt as the correlation id. It must be
/// 1-64 letters, digits, `-`, `_` or `.`, so it cannot inject anything into logs or headers.
pub fn valid_request_id(raw: &str) -> bool {
    (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn csrf_cases() {
        // Each case: method, request headers, whether the request may proceed.
        type Case<'a> = (&'a Method, &'a [(&'static str, &'static str)], bool);
        let cases: &[Case] = &[
            (
                &Method::GET,
                &[("cookie", "id=1"), ("origin", "https://evil.example")],
                true,
            ),
            (&Method::POST, &[("origin", "https://evil.example")], true),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("authorization", "Basic eDp5"),
                    ("host", "app.test"),
                ],
                false,
            ),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("host", "app.test"),
                    ("origin", "https://app.test"),
                ],
                true,
            ),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("host", "app.test"),
                    ("origin", "https://evil.example"),
                ],
                false,
            ),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("host", "app.test"),
                    ("sec-fetch-site", "cross-site"),
                ],
                false,
            ),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("host", "app.test"),
                    ("sec-fetch-site", "same-site"),
                ],
                false,
            ),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("host", "app.test"),
                    ("sec-fetch-site", "same-origin"),
                ],
                true,
            ),
            (
                &Method::DELETE,
                &[("cookie", "id=1"), ("host", "app.test")],
                false,
            ),
            (
                &Method::POST,
                &[("cookie", "id=1"), ("host", "app.test"), ("origin", "null")],
                false,
            ),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("host", "app.test:3000"),
                    ("origin", "http://app.test:3000"),
                ],
                true,
            ),
            (
                &Method::POST,
                &[
                    ("cookie", "id=1"),
                    ("host", "app.test:3000"),
                    ("origin", "http://app.test:3001"),
                ],
                false,
            ),
        ];
        for (method, pairs, allowed) in cases {
            let verdict = csrf_violation(method, &headers(pairs), &[], false);
            assert_eq!(
                verdict.is_none(),
                *allowed,
                "{method} {pairs:?}: {verdict:?}"
            );
        }
    }

    #[test]
    fn csrf_trusted_origin_allowed() {
        let map = headers(&[
            ("cookie", "id=1"),
            ("host", "internal:3000"),
            ("origin", "https://siteline.example"),
        ]);
        let trusted = ["https://siteline.example".to_string()];
        assert!(csrf_violation(&Method::POST, &map, &trusted, false).is_none());
    }

    #[test]
    fn csrf_always_check_covers_cookieless_posts() {
        let evil = headers(&[("host", "app.test"), ("origin", "https://evil.example")]);
        assert!(csrf_violation(&Method::POST, &evil, &[], true).is_some());
        assert!(csrf_violation(&Method::POST, &evil, &[], false).is_none());

        let own = headers(&[("host", "app.test"), ("origin", "http://app.test")]);
        assert!(csrf_violation(&Method::POST, &own, &[], true).is_none());
    }

    #[test]
    fn csrf_bearer_requests_are_exempt() {
        let map = headers(&[
            ("cookie", "id=1"),
            ("authorization", "Bearer slt_x"),
            ("host", "app.test"),
        ]);
        assert!(csrf_violation(&Method::POST, &map, &[], true).is_none());
    }

    #[test]
    fn request_id_validation() {
        assert!(valid_request_id("0190f1c2-7a3b-7c4d-8e5f-0123456789ab"));
        assert!(valid_request_id("job.42_retry"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id("x\r\ninjected: 1"));
        assert!(!valid_request_id(&"a".repeat(65)));
    }
}
