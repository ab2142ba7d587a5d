//! A throwaway PKI for the TLS tests: a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate, all made here (no openssl binary, no files in
//! the repository), plus the redis-server and redis-cli arguments that use them.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "proof-market test CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let issue = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = issue(vec!["127.0.0.1".into(), "localhost".into()], "redis");
        let (client, client_key) = issue(vec![], "proof-market node");
        // A second, unrelated CA: a node trusting it must refuse the server.
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = other.self_signed(&other_key).unwrap();
        for (name, text) in [
            ("ca.pem", ca.pem()),
            ("other-ca.pem", other.pem()),
            ("server.pem", server),
            ("server.key", server_key),
            ("client.pem", client),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The file's path as a string, for command lines.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// redis-server arguments: TLS only on `port`, client certificates required.
    pub fn server_args(&self, port: u16) -> Vec<String> {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &self.arg("server.pem"),
            "--tls-key-file",
            &self.arg("server.key"),
            "--tls-ca-cert-file",
            &self.arg("ca.pem"),
            "--tls-auth-clients",
            "yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// redis-cli arguments to talk to such a server.
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.arg("ca.pem"),
            "--cert".into(),
            self.arg("client.pem"),
            "--key".into(),
            self.arg("client.key"),
        ]
    }

    /// The node's flags for this PKI (private CA + client certificate).
    pub fn node_args(&self) -> Vec<String> {
        vec![
            "--redis-ca-file".into(),
            self.arg("ca.pem"),
            "--redis-client-cert".into(),
            self.arg("client.pem"),
            "--redis-client-key".into(),
            self.arg("client.key"),
        ]
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
