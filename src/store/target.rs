//! Where the store lives and how to reach it: one Redis or a cluster's seeds, in the
//! clear (`redis://`) or over TLS (`rediss://`), optionally with a private CA and a
//! client certificate (mutual TLS), as managed Redis offerings require.

use std::path::Path;

use redis::{ClientTlsConfig, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the store lives: one Redis, or a Redis Cluster reached through seed nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    seeds: Vec<String>,
    cluster: bool,
    tls: Option<RedisTls>,
}

impl RedisTarget {
    /// Reads `--redis-url`: one URL is a single Redis unless `cluster` is set; a
    /// comma-separated list of URLs is a cluster's seeds. All seeds use one scheme.
    pub fn parse(urls: &str, cluster: bool) -> Result<RedisTarget, String> {
        let seeds: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if seeds.is_empty() {
            return Err("no Redis URL given".into());
        }
        for s in &seeds {
            if !(s.starts_with("redis://") || s.starts_with("rediss://")) {
                return Err(format!(
                    "Redis URL {} must start with redis:// or rediss://",
                    redact_url(s)
                ));
            }
            // rediss://host/#insecure would turn certificate checks off; not offered.
            if s.contains('#') {
                return Err(format!(
                    "Redis URL {} has a fragment ('#...'); certificate checks cannot be turned off",
                    redact_url(s)
                ));
            }
        }
        let tls = seeds[0].starts_with("rediss://");
        if let Some(odd) = seeds.iter().find(|s| s.starts_with("rediss://") != tls) {
            return Err(format!(
                "Redis URLs mix redis:// and rediss:// ({}); use one scheme for every seed",
                redact_url(odd)
            ));
        }
        Ok(RedisTarget {
            cluster: cluster || seeds.len() > 1,
            seeds,
            tls: None,
        })
    }

    /// Uses a private CA and/or a client certificate for `rediss://`. Refused for plain
    /// `redis://` URLs, where the files would be silently ignored.
    pub fn with_tls(mut self, tls: RedisTls) -> Result<RedisTarget, String> {
        if !self.uses_tls() {
            return Err(format!(
                "TLS files given but the Redis URL {} is plain redis://; use rediss://",
                redact_url(&self.seeds[0])
            ));
        }
        self.tls = Some(tls);
        Ok(self)
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// True when connections are TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        self.seeds[0].starts_with("rediss://")
    }

    /// The seed URLs (one for a single Redis).
    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// The certificates to hand to the redis client, if any were configured.
    pub(crate) fn certificates(&self) -> Option<TlsCertificates> {
        self.tls.as_ref().map(RedisTls::certificates)
    }

    /// The target for logs, passwords masked.
    pub fn redacted(&self) -> String {
        let tls = match &self.tls {
            Some(t) => format!(" ({})", t.describe()),
            None => String::new(),
        };
        if self.cluster {
            format!(
                "cluster [{}]{tls}",
                self.seeds
                    .iter()
                    .map(|s| redact_url(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("{}{tls}", redact_url(&self.seeds[0]))
        }
    }
}

/// TLS material for `rediss://`: a CA to trust instead of the system roots, and a
/// client certificate with its key for servers that require mutual TLS. PEM bytes,
/// checked when loaded so that a wrong file fails at start with its name.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTls {
    ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(&self.describe())
    }
}

impl RedisTls {
    /// Reads and checks the files; `None` when none is given (system roots, no client
    /// certificate).
    pub fn load(
        ca_file: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<Option<RedisTls>, String> {
        let ca = ca_file
            .map(|p| read_certificates(p, "--redis-ca-file"))
            .transpose()?;
        let client = match (client_cert, client_key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((
                read_certificates(c, "--redis-client-cert")?,
                read_key(k, "--redis-client-key")?,
            )),
            (Some(_), None) => return Err("--redis-client-cert needs --redis-client-key".into()),
            (None, Some(_)) => return Err("--redis-client-key needs --redis-client-cert".into()),
        };
        Ok(RedisTls::from_pem(ca, client))
    }

    /// From PEM bytes already in memory (checked as [`RedisTls::load`] does).
    pub fn from_pem(ca: Option<Vec<u8>>, client: Option<(Vec<u8>, Vec<u8>)>) -> Option<RedisTls> {
        if ca.is_none() && client.is_none() {
            return None;
        }
        Some(RedisTls { ca, client })
    }

    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.ca.clone(),
        }
    }

    fn describe(&self) -> String {
        let ca = if self.ca.is_some() {
            "private CA"
        } else {
            "system roots"
        };
        let client = if self.client.is_some() {
            ", client certificate"
        } else {
            ""
        };
        format!("TLS: {ca}{client}")
    }
}

fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

fn read_certificates(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    let pem = read_pem(path, flag)?;
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| format!("{flag} {}: bad PEM certificate: {e}", path.display()))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!(
            "{flag} {}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(pem)
}

fn read_key(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    let pem = read_pem(path, flag)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{flag} {}: no usable PEM private key: {e}", path.display()))?;
    Ok(pem)
}

/// rustls needs a process-wide crypto provider; the redis crate builds rustls without
/// one. Installing it twice is harmless (the second call is refused and ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A Redis URL fit for logs: any password or user name is masked.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pems() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn one_url_is_single_a_list_is_a_cluster() {
        let t = RedisTarget::parse("redis://a:1", false).unwrap();
        assert!(!t.is_cluster() && !t.uses_tls());
        let t = RedisTarget::parse("rediss://a:1, rediss://b:2", false).unwrap();
        assert!(t.is_cluster() && t.uses_tls());
        assert_eq!(t.seeds().len(), 2);
        assert!(RedisTarget::parse("redis://a:1", true)
            .unwrap()
            .is_cluster());
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (urls, needle) in [
            ("", "no Redis URL"),
            (" , ", "no Redis URL"),
            ("http://a:1", "must start with"),
            ("redis://a:1,rediss://b:2", "mix"),
            ("rediss://a:1/#insecure", "fragment"),
        ] {
            let e = RedisTarget::parse(urls, false).unwrap_err();
            assert!(e.contains(needle), "{urls:?}: {e}");
        }
        let e = RedisTarget::parse("redis://:pw@a:1,ftp://u:secret@b", false).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn tls_files_need_a_tls_url() {
        let tls = RedisTls::from_pem(Some(b"x".to_vec()), None).unwrap();
        let e = RedisTarget::parse("redis://a:1", false)
            .unwrap()
            .with_tls(tls.clone())
            .unwrap_err();
        assert!(e.contains("rediss://"), "{e}");
        let t = RedisTarget::parse("rediss://a:1", false)
            .unwrap()
            .with_tls(tls)
            .unwrap();
        assert_eq!(t.redacted(), "rediss://a:1 (TLS: private CA)");
        assert!(t.certificates().unwrap().root_cert.is_some());
    }

    #[test]
    fn loads_good_files_and_names_the_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pems();
        let ca = file(&dir, "ca.pem", &cert);
        let crt = file(&dir, "client.pem", &cert);
        let k = file(&dir, "client.key", &key);
        let junk = file(&dir, "junk.pem", "not a certificate\n");
        assert_eq!(RedisTls::load(None, None, None).unwrap(), None);
        let t = RedisTls::load(Some(&ca), Some(&crt), Some(&k))
            .unwrap()
            .unwrap();
        assert_eq!(
            format!("{t:?}"),
            "TLS: private CA, client certificate",
            "Debug never prints key material"
        );

        let e = RedisTls::load(Some(&junk), None, None).unwrap_err();
        assert!(
            e.contains("--redis-ca-file") && e.contains("junk.pem"),
            "{e}"
        );
        let e = RedisTls::load(None, Some(&crt), Some(&junk)).unwrap_err();
        assert!(e.contains("--redis-client-key"), "{e}");
        let e = RedisTls::load(None, Some(&crt), None).unwrap_err();
        assert!(e.contains("needs --redis-client-key"), "{e}");
        let e = RedisTls::load(None, None, Some(&k)).unwrap_err();
        assert!(e.contains("needs --redis-client-cert"), "{e}");
        let e = RedisTls::load(Some(&dir.path().join("missing.pem")), None, None).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        // A key is not a certificate.
        let e = RedisTls::load(Some(&k), None, None).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
