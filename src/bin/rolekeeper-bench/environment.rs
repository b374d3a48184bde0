//! Where a run keeps its state: a temporary directory (server log, SQLite
//! files) and, on PostgreSQL, the fresh databases it created and drops again.

use crate::Result;
use sea_orm::{ConnectionTrait, Database};
use std::{
    fmt,
    path::{Path, PathBuf},
};

/// Which database the server (and the commit baseline) runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the temporary directory.
    Sqlite,
    /// A fresh database on a given PostgreSQL server.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// The temporary directory and the databases of one run.
#[derive(Debug)]
pub struct Environment {
    dir: PathBuf,
    postgres_url: Option<String>,
    created: Vec<String>,
}

impl Environment {
    /// Creates the temporary directory; `postgres_url` names the server to
    /// create databases on (none: SQLite files in the directory).
    pub fn create(postgres_url: Option<&str>) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "rolekeeper-bench-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self {
            dir,
            postgres_url: postgres_url.map(str::to_owned),
            created: Vec::new(),
        })
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Which database kind this run uses.
    pub fn backend(&self) -> Backend {
        match self.postgres_url {
            Some(_) => Backend::Postgres,
            None => Backend::Sqlite,
        }
    }

    /// The URL of a new, empty database for `purpose`: a SQLite file in the
    /// directory, or a database created on the PostgreSQL server.
    pub async fn fresh_database(&mut self, purpose: &str) -> Result<String> {
        let Some(admin_url) = &self.postgres_url else {
            let path = self.dir.join(format!("{purpose}.db"));
            return Ok(format!("sqlite://{}?mode=rwc", path.display()));
        };
        let name = format!(
            "rk_bench_{}_{}",
            purpose.replace('-', "_"),
            uuid::Uuid::new_v4().simple()
        );
        let conn = Database::connect(admin_url.as_str())
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", redact(admin_url)))?;
        let created = conn
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await;
        let _ = conn.close().await;
        created.map_err(|e| format!("cannot create database {name}: {e}"))?;
        let url = replace_database(admin_url, &name);
        self.created.push(name);
        Ok(url)
    }

    /// Drops the databases this run created (best effort) and removes the
    /// temporary directory unless `keep`.
    pub async fn cleanup(self, keep: bool) {
        if let Some(admin_url) = &self.postgres_url {
            drop_databases(admin_url, &self.created).await;
        }
        if keep {
            eprintln!("rolekeeper-bench: kept {}", self.dir.display());
        } else if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "rolekeeper-bench: cannot remove {}: {err}",
                self.dir.display()
            );
        }
    }
}

/// `DROP DATABASE ... WITH (FORCE)` for each name; failures are reported,
/// not fatal.
async fn drop_databases(admin_url: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let conn = match Database::connect(admin_url).await {
        Ok(conn) => conn,
        Err(err) => {
            eprintln!("rolekeeper-bench: cannot drop the benchmark databases: {err}");
            return;
        }
    };
    for name in names {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if let Err(err) = conn.execute_unprepared(&sql).await {
            eprintln!("rolekeeper-bench: cannot drop database {name}: {err}");
        }
    }
    let _ = conn.close().await;
}

/// `postgres://u@h:5432/postgres?x=y` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let Some(at) = url[start..].find('@').map(|i| start + i) else {
        return url.to_owned();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
