//! Admin authentication of the management API.
//!
//! Owns the admin token's life: [`load_or_create_admin_token`] reads it from
//! `<data_dir>/admin-token` or generates one on first start (256 bits from the
//! operating system's CSPRNG, written with mode 0600 from the moment the file
//! exists), and [`require_admin`] is the middleware that admits a request to
//! `/api/mcp/...` only with `Authorization: Bearer <token>`, compared in
//! constant time.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ApiState;

/// The admin token's file name inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Reads the admin token from `<data_dir>/admin-token`, or generates a new one
/// (256 random bits, 64 hex digits) and stores it there with mode 0600.
/// Returns the token and whether it was just created. The data directory is
/// created if missing. A token file that exists but is empty is an error
/// rather than silently replaced.
pub fn load_or_create_admin_token(data_dir: &Path) -> io::Result<(String, bool)> {
    load_or_create_secret(data_dir, ADMIN_TOKEN_FILE)
}

/// The reconnect-token signing key's file name inside the data directory.
pub const RECONNECT_KEY_FILE: &str = "reconnect-key";

/// The file name of the key that signs 2026-07-28 `requestState`s.
pub const REQUEST_STATE_KEY_FILE: &str = "request-state-key";

/// Reads `<data_dir>/<file>`, or creates it with 256 random bits as 64 hex
/// digits, mode 0600 from the moment it exists. Returns the secret and
/// whether it was just created.
pub fn load_or_create_secret(data_dir: &Path, file: &str) -> io::Result<(String, bool)> {
    let path = data_dir.join(file);
    match read_token(&path) {
        Ok(token) => return Ok((token, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(data_dir)?;

    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(io::Error::other)?;
    let token = hex::encode(bytes);

    // Write a private temporary file, then link it into place: the token file
    // either does not exist or is complete, and a concurrent first start that
    // wins the race keeps its token.
    let tmp = data_dir.join(format!(".{file}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    {
        let mut file = create_private(&tmp)?;
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((token, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((read_token(&path)?, false)),
        Err(e) => Err(e),
    }
}

fn read_token(path: &Path) -> io::Result<String> {
    let text = fs::read_to_string(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the admin token file {} is empty", path.display()),
        ));
    }
    warn_if_readable_by_others(path);
    Ok(token.to_string())
}

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the admin token file is accessible to other users; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Whether `presented` is the admin token. Both are hashed first, so the
/// comparison takes the same time whatever their lengths and contents.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let expected = Sha256::digest(expected.as_bytes());
    let presented = Sha256::digest(presented.as_bytes());
    expected.ct_eq(&presented).into()
}

/// The bearer token of an `Authorization` header value, if it is one.
pub(crate) fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: lets the request through only with the admin bearer token;
/// otherwise 401 with `WWW-Authenticate: Bearer`.
pub async fn require_admin(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return Err(ApiError::MissingToken);
    };
    let token = bearer(value.as_bytes()).ok_or(ApiError::InvalidToken)?;
    if !token_matches(&state.admin_token, token) {
        return Err(ApiError::InvalidToken);
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(&[0xff, 0xfe]), None);
    }

    #[test]
    fn compares_tokens() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secret", "secreT"));
        assert!(!token_matches("secret", "secret2"));
        assert!(!token_matches("", ""));
    }

    #[test]
    fn creates_then_reuses_a_private_token() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (token, created) = load_or_create_admin_token(&data).unwrap();
        assert!(created);
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data.join(ADMIN_TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = load_or_create_admin_token(&data).unwrap();
        assert!(!created);
        assert_eq!(again, token);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&data).unwrap().count(), 1);
    }

    #[test]
    fn refuses_an_empty_token_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ADMIN_TOKEN_FILE), "\n").unwrap();
        let err = load_or_create_admin_token(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
