//! Connecting to a server.

use std::time::Duration;

use redis::{Client, Connection, IntoConnectionInfo};

use crate::RedisError;

/// How long connecting and each command may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis server, and where it is, for messages.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    client: Client,
    pub at: String,
}

impl Server {
    pub fn open(url: &str) -> Result<Server, RedisError> {
        let shown = hide_password(url);
        let bad = |source| RedisError::Url {
            url: shown.clone(),
            source,
        };
        let info = url.into_connection_info().map_err(bad)?;
        let at = info.addr().to_string();
        let client = Client::open(info).map_err(bad)?;
        Ok(Server { client, at })
    }

    pub fn connect(&self) -> Result<Connection, RedisError> {
        let failed = |source| RedisError::Connect {
            at: self.at.clone(),
            source,
        };
        let con = self.client.get_connection_with_timeout(TIMEOUT).map_err(failed)?;
        con.set_read_timeout(Some(TIMEOUT)).map_err(failed)?;
        con.set_write_timeout(Some(TIMEOUT)).map_err(failed)?;
        Ok(con)
    }

    /// Wraps a failed command with what was being done.
    pub fn failed(&self, doing: impl Into<String>) -> impl FnOnce(redis::RedisError) -> RedisError + '_ {
        let doing = doing.into();
        move |source| RedisError::Command {
            doing,
            at: self.at.clone(),
            source,
        }
    }
}

/// `url` without the password of its user info.
fn hide_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(hide_password("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(hide_password("redis://h:1/"), "redis://h:1/");
        let err = Server::open("nonsense://x").unwrap_err().to_string();
        assert!(err.starts_with("bad Redis URL \"nonsense://x\""), "{err}");
        assert_eq!(
            Server::open("redis://127.0.0.1:6390/").unwrap().at,
            "127.0.0.1:6390"
        );
    }
}
