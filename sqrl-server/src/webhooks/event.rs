//! What a login event says: its type, the account it concerns, and a JSON
//! body built once, when the change it reports is committed, and sent
//! unchanged on every delivery attempt.

use std::net::IpAddr;

use rand_core::{OsRng, RngCore as _};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use sqrl_core::keys::IdentityKey;
use sqrl_core::server::Mutation;

use crate::store::LoginMethod;

/// The type of a login event (`type` in its body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A browser session was created.
    Login,
    /// The browser's user logged out.
    Logout,
    /// A session was ended by something other than its own browser: the
    /// user on the account page, or a change to the identity that opened it.
    SessionRevoked,
    /// The user disabled SQRL login for the account (SPEC `disable`).
    IdentityDisabled,
    /// The user re-enabled SQRL login with their rescue code (`enable`).
    IdentityEnabled,
    /// The SQRL association was deleted (the user's `remove`, or the
    /// operator API).
    IdentityRemoved,
    /// The account now answers to a new identity key (rekey).
    IdentityReplaced,
}

impl EventKind {
    /// Every event type.
    pub const ALL: [EventKind; 7] = [
        EventKind::Login,
        EventKind::Logout,
        EventKind::SessionRevoked,
        EventKind::IdentityDisabled,
        EventKind::IdentityEnabled,
        EventKind::IdentityRemoved,
        EventKind::IdentityReplaced,
    ];

    /// The name in the body and in the `events` filter of the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Login => "login",
            EventKind::Logout => "logout",
            EventKind::SessionRevoked => "session.revoked",
            EventKind::IdentityDisabled => "identity.disabled",
            EventKind::IdentityEnabled => "identity.enabled",
            EventKind::IdentityRemoved => "identity.removed",
            EventKind::IdentityReplaced => "identity.replaced",
        }
    }

    /// Reads a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Why a session was revoked (`data.reason` of `session.revoked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user ended it from the account page of another session.
    User,
    /// The identity that opened it was disabled.
    IdentityDisabled,
    /// The identity was replaced (rekey).
    IdentityReplaced,
    /// The identity was removed.
    IdentityRemoved,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            RevokeReason::User => "user",
            RevokeReason::IdentityDisabled => "identity-disabled",
            RevokeReason::IdentityReplaced => "identity-replaced",
            RevokeReason::IdentityRemoved => "identity-removed",
        }
    }
}

/// Who removed an identity (`data.by` of `identity.removed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovedBy {
    /// The user, with the SQRL `remove` command.
    User,
    /// The operator API.
    Operator,
}

/// How a session ended, as the store reports it in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Its own browser logged out (`logout`).
    Logout,
    /// Revoked by the user from another session (`session.revoked`).
    Revoked,
}

/// The account id a login event carries (`account`): the account's row id
/// in decimal. The one place that decides it, so that a stable opaque id can
/// replace it everywhere at once.
pub fn account_ref(account_id: i64) -> String {
    account_id.to_string()
}

/// A login event, ready to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique id: `evt_` and 128 random bits (base64url). The `Webhook-Id`
    /// of every delivery of this event, so receivers can drop repeats.
    pub id: String,
    /// The type.
    pub kind: EventKind,
    /// The account (row id).
    pub account_id: i64,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
}

impl Event {
    fn new(kind: EventKind, account_id: i64, at: u64, data: Value) -> Self {
        let mut random = [0u8; 16];
        OsRng.fill_bytes(&mut random);
        let id = format!("evt_{}", sqrl_core::base64url::encode(random));
        let occurred_at = i64::try_from(at)
            .ok()
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_default();
        let body = json!({
            "id": id,
            "type": kind.as_str(),
            "occurred_at": occurred_at,
            "account": account_ref(account_id),
            "data": data,
        })
        .to_string();
        Self {
            id,
            kind,
            account_id,
            body,
        }
    }

    /// `login`: a session was created for `account_id`.
    pub fn login(
        account_id: i64,
        session_id: i64,
        method: LoginMethod,
        ip: IpAddr,
        user_agent: &str,
        at: u64,
    ) -> Self {
        Self::new(
            EventKind::Login,
            account_id,
            at,
            json!({
                "session": session_id,
                "method": method.as_str(),
                "ip": ip.to_canonical().to_string(),
                "user_agent": user_agent,
            }),
        )
    }

    /// `logout` or `session.revoked` (reason `user`) for one session.
    pub fn session_ended(account_id: i64, session_id: i64, end: SessionEnd, at: u64) -> Self {
        match end {
            SessionEnd::Logout => Self::new(
                EventKind::Logout,
                account_id,
                at,
                json!({ "session": session_id }),
            ),
            SessionEnd::Revoked => Self::revoked(account_id, session_id, RevokeReason::User, at),
        }
    }

    /// `session.revoked` for one session.
    pub fn revoked(account_id: i64, session_id: i64, reason: RevokeReason, at: u64) -> Self {
        Self::new(
            EventKind::SessionRevoked,
            account_id,
            at,
            json!({ "session": session_id, "reason": reason.as_str() }),
        )
    }

    /// The event of a SQRL identity change made by its user (the kind
    /// [`identity_event`] gave).
    pub fn identity_change(kind: EventKind, account_id: i64, at: u64) -> Self {
        match kind {
            EventKind::IdentityRemoved => Self::removed(account_id, RemovedBy::User, at),
            _ => Self::new(kind, account_id, at, json!({})),
        }
    }

    /// `identity.removed`.
    pub fn removed(account_id: i64, by: RemovedBy, at: u64) -> Self {
        let by = match by {
            RemovedBy::User => "user",
            RemovedBy::Operator => "operator",
        };
        Self::new(
            EventKind::IdentityRemoved,
            account_id,
            at,
            json!({ "by": by }),
        )
    }
}

/// The event a step's mutation reports, and the identity key under which
/// its account is found before the change is applied; `None` for changes
/// that are not login events (a new identity, options, nothing).
pub fn identity_event(mutation: &Mutation) -> Option<(EventKind, &IdentityKey)> {
    match mutation {
        Mutation::Disable { idk, .. } => Some((EventKind::IdentityDisabled, idk)),
        Mutation::Enable { idk, .. } => Some((EventKind::IdentityEnabled, idk)),
        Mutation::Remove { idk } => Some((EventKind::IdentityRemoved, idk)),
        Mutation::Replace { previous, .. } => Some((EventKind::IdentityReplaced, previous)),
        _ => None,
    }
}

/// Why a step's mutation ends the account's sessions.
pub fn revoke_reason(mutation: &Mutation) -> RevokeReason {
    match mutation {
        Mutation::Disable { .. } => RevokeReason::IdentityDisabled,
        Mutation::Replace { .. } => RevokeReason::IdentityReplaced,
        _ => RevokeReason::IdentityRemoved,
    }
}

/// Which configured endpoints receive which events: the store writes one
/// outbox row per event and endpoint that wants it, in the transaction of
/// the change. With no endpoint, nothing is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRoutes {
    routes: Vec<(String, Option<Vec<EventKind>>)>,
}

impl EventRoutes {
    /// No endpoint: no event is recorded.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds an endpoint (named by its URL) that receives `events`, or every
    /// event when `None`.
    pub fn with(mut self, endpoint: impl Into<String>, events: Option<Vec<EventKind>>) -> Self {
        self.routes.push((endpoint.into(), events));
        self
    }

    /// The endpoints that receive `kind`.
    pub fn targets(&self, kind: EventKind) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .filter(move |(_, events)| events.as_ref().is_none_or(|events| events.contains(&kind)))
            .map(|(endpoint, _)| endpoint.as_str())
    }

    /// Whether any endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|(endpoint, _)| endpoint.clone())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_body_has_the_documented_fields_and_no_more() {
        let event = Event::login(
            7,
            42,
            LoginMethod::SameDevice,
            "::ffff:192.0.2.1".parse().unwrap(),
            "Firefox",
            1_700_000_000,
        );
        let body: Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body["id"], event.id.as_str());
        assert!(event.id.starts_with("evt_") && event.id.len() == 26);
        assert_eq!(body["type"], "login");
        assert_eq!(body["occurred_at"], "2023-11-14T22:13:20Z");
        assert_eq!(body["account"], "7");
        assert_eq!(
            body["data"],
            json!({"session": 42, "method": "same-device", "ip": "192.0.2.1", "user_agent": "Firefox"})
        );
        assert_eq!(body.as_object().unwrap().len(), 5);
        assert_ne!(
            event.id,
            Event::identity_change(EventKind::IdentityEnabled, 7, 1).id
        );
    }

    #[test]
    fn names_round_trip_and_routes_filter() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("login.failed"), None);
        let routes = EventRoutes::none()
            .with("http://a", None)
            .with("http://b", Some(vec![EventKind::Logout]));
        assert_eq!(
            routes.targets(EventKind::Login).collect::<Vec<_>>(),
            ["http://a"]
        );
        assert_eq!(
            routes.targets(EventKind::Logout).collect::<Vec<_>>(),
            ["http://a", "http://b"]
        );
    }
}
