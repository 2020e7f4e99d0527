//! The action's typed error, mirroring the WIT `action-error` variant.

use std::fmt;

/// Why a call failed; one case per WIT `action-error` case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// The input was wrong; fix it and call again.
    InvalidInput(String),
    /// ShipStation rejected the credential.
    Unauthorized(String),
    /// The order (or other object) does not exist.
    NotFound(String),
    /// ShipStation is throttling us.
    RateLimited {
        /// Seconds ShipStation asked us to wait, when it said.
        retry_after_secs: Option<u32>,
        /// What happened.
        message: String,
    },
    /// ShipStation failed or answered with something unusable.
    Upstream {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What happened.
        message: String,
        /// ShipStation's `request_id`, to quote to its support.
        request_id: Option<String>,
    },
    /// The time budget ran out.
    Timeout(String),
    /// The sandbox refused a request.
    Denied(String),
    /// A bug or unexpected state inside the action.
    Internal(String),
}

impl ActionError {
    /// Short machine name of the case, e.g. `not-found`.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionError::InvalidInput(_) => "invalid-input",
            ActionError::Unauthorized(_) => "unauthorized",
            ActionError::NotFound(_) => "not-found",
            ActionError::RateLimited { .. } => "rate-limited",
            ActionError::Upstream { .. } => "upstream",
            ActionError::Timeout(_) => "timeout",
            ActionError::Denied(_) => "denied",
            ActionError::Internal(_) => "internal",
        }
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::InvalidInput(m)
            | ActionError::Unauthorized(m)
            | ActionError::NotFound(m)
            | ActionError::Timeout(m)
            | ActionError::Denied(m)
            | ActionError::Internal(m) => f.write_str(m),
            ActionError::RateLimited {
                retry_after_secs,
                message,
            } => {
                f.write_str(message)?;
                if let Some(s) = retry_after_secs {
                    write!(f, " (retry after {s} s)")?;
                }
                Ok(())
            }
            ActionError::Upstream {
                status,
                message,
                request_id,
            } => {
                f.write_str(message)?;
                if let Some(s) = status {
                    write!(f, " (HTTP {s})")?;
                }
                if let Some(id) = request_id {
                    write!(f, " [request_id {id}]")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ActionError {}

/// The contract's error for this one: the same case, its fields carried over.
impl From<ActionError> for actionbox_guest::ActionError {
    fn from(e: ActionError) -> Self {
        use actionbox_guest::{ActionError as Contract, RateLimit, UpstreamFailure};
        match e {
            ActionError::InvalidInput(m) => Contract::InvalidInput(m),
            ActionError::Unauthorized(m) => Contract::Unauthorized(m),
            ActionError::NotFound(m) => Contract::NotFound(m),
            ActionError::RateLimited {
                retry_after_secs,
                message,
            } => Contract::RateLimited(RateLimit {
                retry_after_secs,
                message,
            }),
            ActionError::Upstream {
                status,
                message,
                request_id,
            } => Contract::Upstream(UpstreamFailure {
                status,
                message,
                request_id,
            }),
            ActionError::Timeout(m) => Contract::Timeout(m),
            ActionError::Denied(m) => Contract::Denied(m),
            ActionError::Internal(m) => Contract::Internal(m),
        }
    }
}
