//! The cluster secret: what every process of a cluster knows and a stranger does not.

use std::fmt;
use std::path::Path;

use crate::errors::FlowError;

/// The environment variable that holds the cluster secret itself.
pub const ENV_SECRET: &str = "BWX_CLUSTER_SECRET";
/// The environment variable that names a file holding the cluster secret.
pub const ENV_SECRET_FILE: &str = "BWX_CLUSTER_SECRET_FILE";

/// Secrets shorter than this are refused: they could be guessed.
const MIN_LEN: usize = 16;

/// A shared secret that the processes of a cluster prove to each other before any byte
/// reaches the dataflow (see [`ClusterOptions`](super::ClusterOptions)).
///
/// Its bytes never appear in `Debug` output or error messages.
///
/// ```
/// use bwx::ClusterSecret;
///
/// let secret = ClusterSecret::new("correct horse battery staple").unwrap();
/// assert_eq!(format!("{secret:?}"), "ClusterSecret(28 bytes)");
/// assert!(ClusterSecret::new("short").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// A secret of at least 16 bytes. Surrounding whitespace (a file's final newline) is
    /// not part of it.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<ClusterSecret, FlowError> {
        let bytes = secret.as_ref().trim_ascii();
        if bytes.len() < MIN_LEN {
            return Err(FlowError::Setup(format!(
                "the cluster secret has {} bytes; it needs at least {MIN_LEN} \
                 (for example `openssl rand -hex 32`)",
                bytes.len()
            )));
        }
        Ok(ClusterSecret(bytes.to_vec()))
    }

    /// Reads the secret from a file (as a Kubernetes Secret is mounted).
    pub fn from_file(path: &Path) -> Result<ClusterSecret, FlowError> {
        let bytes = std::fs::read(path).map_err(|e| {
            FlowError::Setup(format!(
                "cannot read the cluster secret file '{}': {e}",
                path.display()
            ))
        })?;
        ClusterSecret::new(bytes).map_err(|e| FlowError::Setup(format!("{e} (in '{}')", path.display())))
    }

    /// The secret of `BWX_CLUSTER_SECRET`, or else of the file `BWX_CLUSTER_SECRET_FILE`
    /// names; `None` when neither is set.
    pub fn from_env() -> Result<Option<ClusterSecret>, FlowError> {
        if let Some(secret) = std::env::var_os(ENV_SECRET) {
            return ClusterSecret::new(secret.as_encoded_bytes())
                .map(Some)
                .map_err(|e| FlowError::Setup(format!("{e} (in {ENV_SECRET})")));
        }
        match std::env::var_os(ENV_SECRET_FILE) {
            Some(path) => ClusterSecret::from_file(Path::new(&path)).map(Some),
            None => Ok(None),
        }
    }

    /// A fresh random secret, for clusters whose processes one supervisor starts.
    pub fn random() -> Result<ClusterSecret, FlowError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| FlowError::Setup(format!("cannot draw a random cluster secret: {e}")))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        ClusterSecret::new(hex)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, to hand to a child process in [`ENV_SECRET`].
    #[cfg(feature = "cli")]
    pub(crate) fn to_env_value(&self) -> std::ffi::OsString {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(&self.0).to_os_string()
        }
        #[cfg(not(unix))]
        {
            String::from_utf8_lossy(&self.0).into_owned().into()
        }
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_secret_loses_its_newline_and_short_or_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        assert_eq!(
            ClusterSecret::from_file(&path).unwrap(),
            ClusterSecret::new("0123456789abcdef0123").unwrap()
        );
        std::fs::write(&path, "tiny\n").unwrap();
        let err = ClusterSecret::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("at least 16") && err.contains("secret"), "{err}");
        let err = ClusterSecret::from_file(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read the cluster secret file"), "{err}");
    }

    #[test]
    fn random_secrets_differ() {
        assert_ne!(ClusterSecret::random().unwrap(), ClusterSecret::random().unwrap());
    }
}
