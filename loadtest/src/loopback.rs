//! The harness only ever sends traffic to this machine: every URL it is given is checked
//! here and refused unless its host is a loopback address (127.0.0.0/8, `::1`, or
//! `localhost`).

use std::net::IpAddr;

use anyhow::{bail, Context, Result};

/// True when `host` (as written in a URL, IPv6 with or without brackets) is loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks an `http://` URL; returns it without a trailing slash.
pub fn check_http_url(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
    if parsed.scheme() != "http" {
        bail!("only http:// URLs are supported, got {url:?}");
    }
    let host = parsed.host_str().unwrap_or("");
    if !is_loopback_host(host) {
        bail!("refusing {url:?}: the load test only targets loopback addresses (127.0.0.1, ::1, localhost)");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Checks a `redis://` URL.
pub fn check_redis_url(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad Redis URL {url:?}"))?;
    if parsed.scheme() != "redis" {
        bail!("only redis:// URLs are supported, got {url:?}");
    }
    let host = parsed.host_str().unwrap_or("");
    if !is_loopback_host(host) {
        bail!("refusing {url:?}: the load test only talks to a loopback Redis");
    }
    Ok(url.to_owned())
}

/// Checks a `postgres://` (or `postgresql://`) URL: a loopback host, no TLS asked for
/// (the checker's client speaks plain TCP).
pub fn check_postgres_url(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad PostgreSQL URL {url:?}"))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        bail!("only postgres:// URLs are supported, got {url:?}");
    }
    let host = parsed.host_str().unwrap_or("");
    if !is_loopback_host(host) {
        bail!("refusing {url:?}: the load test only reads a loopback PostgreSQL");
    }
    if parsed
        .query_pairs()
        .any(|(k, v)| k == "sslmode" && v != "disable" && v != "prefer")
    {
        bail!("{url:?} asks for TLS: the checker reads a loopback PostgreSQL without it");
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_only() {
        assert!(check_http_url("http://127.0.0.1:8080/").is_ok());
        assert!(check_http_url("http://127.3.4.5:80").is_ok());
        assert!(check_http_url("http://localhost:1").is_ok());
        assert!(check_http_url("http://[::1]:8080").is_ok());
        assert!(check_http_url("http://10.0.0.1:8080").is_err());
        assert!(check_http_url("http://192.168.1.2").is_err());
        assert!(check_http_url("http://example.org").is_err());
        assert!(check_http_url("https://127.0.0.1").is_err());
        assert!(check_redis_url("redis://127.0.0.1:6379").is_ok());
        assert!(check_redis_url("redis://172.17.0.1:6379").is_err());
        assert!(check_postgres_url("postgres://postgres@127.0.0.1:5432/proof_market").is_ok());
        assert!(check_postgres_url("postgresql://u:p@localhost/db?sslmode=disable").is_ok());
        assert!(check_postgres_url("postgres://u@10.1.1.1/db").is_err());
        assert!(check_postgres_url("postgres://u@127.0.0.1/db?sslmode=require").is_err());
        assert!(check_postgres_url("redis://127.0.0.1/").is_err());
        assert_eq!(
            check_http_url("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
    }
}
