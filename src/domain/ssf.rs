//! Shared Signals streams (OpenID SSF 1.0 §8): what one receiver asked to
//! get and how, and the delivery state the transmitter keeps for it.

use serde::Serialize;

/// How a stream's events reach its receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsfDelivery {
    /// RFC 8935 push: Tollgate POSTs each SET to the receiver's URL, with
    /// the `Authorization` value the receiver set (a credential of the
    /// receiver's own endpoint, so kept as given and never shown again).
    Push {
        /// The receiver's endpoint.
        endpoint_url: String,
        /// The `Authorization` header to send, if any.
        authorization_header: Option<String>,
    },
    /// RFC 8936 poll: the receiver POSTs to Tollgate's poll endpoint.
    Poll,
}

/// The RFC 8935 delivery method URN.
pub const PUSH_METHOD: &str = "urn:ietf:rfc:8935";
/// The RFC 8936 delivery method URN.
pub const POLL_METHOD: &str = "urn:ietf:rfc:8936";

impl SsfDelivery {
    /// The method's URN.
    pub fn method(&self) -> &'static str {
        match self {
            SsfDelivery::Push { .. } => PUSH_METHOD,
            SsfDelivery::Poll => POLL_METHOD,
        }
    }
}

/// A stream's status (SSF 1.0 §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    /// Events are sent.
    Enabled,
    /// Events are kept and sent once enabled again.
    Paused,
    /// Events are neither sent nor kept.
    Disabled,
}

impl StreamStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Enabled => "enabled",
            StreamStatus::Paused => "paused",
            StreamStatus::Disabled => "disabled",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<StreamStatus> {
        match s {
            "enabled" => Some(StreamStatus::Enabled),
            "paused" => Some(StreamStatus::Paused),
            "disabled" => Some(StreamStatus::Disabled),
            _ => None,
        }
    }
}

/// One stream, with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfStream {
    /// `ss_` and 22 random characters.
    pub id: String,
    /// The receiver: the client whose token created it, and the SETs' `aud`.
    pub client_id: String,
    /// The receiver's description.
    pub description: Option<String>,
    /// Push or poll.
    pub delivery: SsfDelivery,
    /// Event type URIs the receiver asked for.
    pub events_requested: Vec<String>,
    /// Enabled, paused or disabled.
    pub status: StreamStatus,
    /// Why it has that status (set by the receiver, or by Tollgate when it
    /// paused a stream whose receiver failed for 24 hours).
    pub status_reason: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change of its configuration or status.
    pub updated_at: i64,
    /// The last delivery failure, for the admin.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<i64>,
    /// Since when the oldest undelivered event has been failing.
    pub failing_since: Option<i64>,
    /// Failed attempts at the oldest undelivered event.
    pub attempts: i64,
    /// No delivery is tried before this time (exponential backoff).
    pub retry_at: i64,
}

/// An event to store for a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSignal {
    /// The stream.
    pub stream_id: String,
    /// The SET's `jti`.
    pub jti: String,
    /// What caused it, unique per stream (`audit:<id>`, `verify:<jti>`), so
    /// that instances fanning out the same action store it once.
    pub source: String,
    /// The signed SET.
    pub set: String,
    /// When it was stored.
    pub created_at: i64,
}

/// A stored event not yet delivered or acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignal {
    /// Its order in the stream.
    pub seq: i64,
    /// The SET's `jti`.
    pub jti: String,
    /// The signed SET.
    pub set: String,
}
