//! Connecting, and the names the connectors put into SQL.

use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, Config, NoTls};

use crate::PgError;

/// How long a connection attempt may take unless the connection string says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed connection string and where it points, for messages.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    config: Config,
    /// `host:port/dbname`.
    pub at: String,
}

impl Server {
    pub fn parse(conninfo: &str) -> Result<Server, PgError> {
        let mut config = Config::from_str(conninfo).map_err(PgError::Config)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                postgres::config::Host::Tcp(h) => h.clone(),
                postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
        let at = format!("{host}:{port}/{db}");
        Ok(Server { config, at })
    }

    pub fn connect(&self) -> Result<Client, PgError> {
        self.config.connect(NoTls).map_err(|source| PgError::Connect {
            at: self.at.clone(),
            source,
        })
    }

    /// Wraps a failed statement with what was being done.
    pub fn failed(&self, doing: impl Into<String>) -> impl FnOnce(postgres::Error) -> PgError + '_ {
        let doing = doing.into();
        move |source| PgError::Statement {
            doing,
            at: self.at.clone(),
            source,
        }
    }
}

/// Checks that `name` is a plain identifier, optionally qualified by a schema.
pub(crate) fn identifier(what: &'static str, name: &str) -> Result<String, PgError> {
    let plain = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| plain(p)) {
        Ok(name.to_string())
    } else {
        Err(PgError::BadIdentifier {
            what,
            name: name.to_string(),
        })
    }
}

/// Whether a connector error means the server went away (worth retrying later).
pub(crate) fn transient(err: &PgError) -> bool {
    match err {
        PgError::Connect { .. } => true,
        PgError::Statement { source, .. } => {
            source.is_closed() || source.code().is_none_or(|c| c.code().starts_with("08"))
        }
        _ => false,
    }
}

/// Marks a connection loss retriable.
pub(crate) fn into_connector(err: PgError) -> bwx_runtime::inputs::ConnectorError {
    if transient(&err) {
        bwx_runtime::inputs::Transient::new(err).into()
    } else {
        err.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_names() {
        assert!(identifier("table", "events").is_ok());
        assert!(identifier("table", "public.events_2").is_ok());
        for bad in ["", "1x", "a b", "a;drop", "a.b.c", "\"x\""] {
            let err = identifier("table", bad).unwrap_err().to_string();
            assert!(err.starts_with("table"), "{err}");
        }
    }

    #[test]
    fn messages_name_the_server_without_the_password() {
        let server = Server::parse("host=db.example port=6543 user=u password=secret dbname=shop").unwrap();
        assert_eq!(server.at, "db.example:6543/shop");
        let err = Server::parse("host=").err();
        assert!(
            err.is_none()
                || err
                    .unwrap()
                    .to_string()
                    .starts_with("bad PostgreSQL connection string")
        );
    }
}
