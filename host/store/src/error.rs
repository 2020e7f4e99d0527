//! The store's one error type. Every message says what went wrong and what
//! to do; none carries a key, a token or a sealed value (queries always bind
//! their values, and sqlx's error text never includes bound parameters).

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The workspace, integration, action, token or component asked for does not exist.
    #[error("{what} does not exist: check the name, or list what exists")]
    NotFound {
        /// What was looked for, e.g. `integration "shipstation" in workspace "acme"`.
        what: String,
    },
    /// Creating something that already exists.
    #[error("{what} already exists: pick another name, or delete the existing one first")]
    Conflict {
        /// What already exists.
        what: String,
    },
    /// Input the store refuses; `what` names the field and the rule to follow.
    #[error("{what}")]
    Invalid {
        /// The problem and how to fix it.
        what: String,
    },
    /// The database was written by a newer actionbox; migrating backwards is not possible.
    #[error(
        "the store's schema is version {found}, newer than this actionbox (knows {known}): upgrade actionbox, \
         or point --store at another database"
    )]
    SchemaTooNew {
        /// The version the database holds.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// An API key must be sealed or opened, and no master key was configured.
    #[error(
        "no master key: set ACTIONBOX_MASTER_KEY_FILE to a 0600 file with the master key (create one with \
         `actionbox store init-master-key PATH`)"
    )]
    NoMasterKey,
    /// A sealed key was written under another master key than the one this server has.
    #[error(
        "sealed under master key {sealed_with}, this server has {have}; set ACTIONBOX_MASTER_KEY_FILE to the key \
         the store was written with"
    )]
    WrongMasterKey {
        /// Id of the master key the value was sealed under.
        sealed_with: String,
        /// Id of the master key this server holds.
        have: String,
    },
    /// A sealed key did not open under the right master key: it was altered, or
    /// copied from another workspace or integration. Deliberately without detail.
    #[error(
        "a sealed API key could not be opened (it was altered, or copied from another integration): set the \
         integration's key again"
    )]
    Crypto,
    /// The database refused or failed an operation; the text is sqlx's, which never includes bound values.
    #[error("store database error: {0}; check that the database is reachable, writable and not damaged")]
    Database(String),
    /// A file the store needs (the SQLite database, the master key file) could not be read or written.
    #[error("{} cannot be used; check the path and its permissions", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl StoreError {
    /// Shorthand for [`StoreError::NotFound`].
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    /// Shorthand for [`StoreError::Invalid`].
    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        StoreError::Invalid { what: what.into() }
    }

    /// Shorthand for [`StoreError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
