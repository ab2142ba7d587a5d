//! The auth file: where `proof-market user login` keeps the market's token for later
//! commands, and where the producer daemon finds it when it is given no password.
//!
//! It holds `{"url": .., "user": .., "jwt": ..}`. The token is a bearer credential, so the
//! file is written with mode 0600 (on Unix) through a temporary file and a rename, so a
//! crash never leaves a half-written token behind. The market URL is kept with the token so
//! the client never sends a token to a market other than the one that issued it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::error::ClientError;

/// The contents of the auth file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFile {
    /// The market base URL the token was issued by (normalised, no trailing slash).
    pub url: String,
    /// The user name the token belongs to.
    pub user: String,
    /// The JSON web token.
    pub jwt: String,
}

/// Strips trailing slashes so `http://h:1/` and `http://h:1` compare equal.
pub fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// The hint every "not logged in" message ends with.
fn login_hint() -> &'static str {
    "(run 'proof-market user login')"
}

impl AuthFile {
    /// Reads the auth file; a missing file or an empty token is [`ClientError::NotLoggedIn`].
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotLoggedIn(format!(
                    "no token in {} {}",
                    path.display(),
                    login_hint()
                )))
            }
            Err(e) => return Err(ClientError::io("read", path, e)),
        };
        let auth: AuthFile = serde_json::from_str(&text).map_err(|e| {
            ClientError::Invalid(format!(
                "{} is not a valid auth file ({e}); log in again to rewrite it",
                path.display()
            ))
        })?;
        if auth.jwt.trim().is_empty() {
            return Err(ClientError::NotLoggedIn(format!(
                "no token in {} {}",
                path.display(),
                login_hint()
            )));
        }
        Ok(auth)
    }

    /// Reads the auth file and checks its token was issued by the market at `url`.
    pub fn load_for(path: &Path, url: &str) -> Result<Self, ClientError> {
        let auth = Self::load(path)?;
        if normalize_url(&auth.url) != normalize_url(url) {
            return Err(ClientError::NotLoggedIn(format!(
                "the token in {} is for {}, not {} {}",
                path.display(),
                auth.url,
                normalize_url(url),
                login_hint()
            )));
        }
        Ok(auth)
    }

    /// Writes the auth file with mode 0600, creating parent directories.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        create_parent_dirs(path)?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ClientError::Invalid(format!("cannot encode the auth file: {e}")))?;
        let tmp = temp_path(path);
        let written = write_private(&tmp, text.as_bytes());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(ClientError::io("write", &tmp, e));
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ClientError::io("write", path, e)
        })
    }
}

/// Creates the directories above `path`, if any are missing (the auth file's, and the
/// command line's output files).
pub fn create_parent_dirs(path: &Path) -> Result<(), ClientError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| ClientError::io("create directory", dir, e))
        }
        _ => Ok(()),
    }
}

/// `dir/.name.tmp` beside the target, so the rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "proof-market-auth".into());
    path.with_file_name(format!(".{name}.tmp"))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // `mode` only applies to new files; a stale temp file may have other bits.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuthFile {
        AuthFile {
            url: "http://127.0.0.1:8080".into(),
            user: "alice".into(),
            jwt: "eyJ.header.sig".into(),
        }
    }

    #[test]
    fn round_trip_in_new_directory() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nested/dir/auth.json");
        sample().save(&path)?;
        assert_eq!(AuthFile::load(&path)?, sample());
        let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        assert_eq!(
            raw,
            serde_json::json!({"url": "http://127.0.0.1:8080", "user": "alice", "jwt": "eyJ.header.sig"})
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        // Overwrite keeps working and leaves no temp file.
        let mut renewed = sample();
        renewed.jwt = "new".into();
        renewed.save(&path)?;
        assert_eq!(AuthFile::load(&path)?.jwt, "new");
        assert_eq!(
            std::fs::read_dir(path.parent().ok_or("no parent")?)?.count(),
            1
        );
        Ok(())
    }

    #[test]
    fn missing_file_means_not_logged_in() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(".proof-market-auth.json");
        match AuthFile::load(&path) {
            Err(e @ ClientError::NotLoggedIn(_)) => {
                let line = e.to_string();
                assert!(line.starts_with("not logged in: no token in "), "{line}");
                assert!(line.ends_with("(run 'proof-market user login')"), "{line}");
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn token_is_tied_to_its_market() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("auth.json");
        sample().save(&path)?;
        assert!(AuthFile::load_for(&path, "http://127.0.0.1:8080/").is_ok());
        assert!(matches!(
            AuthFile::load_for(&path, "http://other:8080"),
            Err(ClientError::NotLoggedIn(_))
        ));
        Ok(())
    }

    #[test]
    fn garbage_file_is_reported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("auth.json");
        std::fs::write(&path, "not json")?;
        assert!(matches!(
            AuthFile::load(&path),
            Err(ClientError::Invalid(_))
        ));
        Ok(())
    }
}
