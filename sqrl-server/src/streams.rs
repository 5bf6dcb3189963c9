//! Open login event streams (`GET /login/events`): a few per attempt, a cap
//! per client address and one in all.
//!
//! A stream holds a connection and a task for as long as the page stays open,
//! so without caps one client can hold thousands. Each open stream owns a
//! [`StreamSlot`]; dropping it (the stream ended, the client went away, the
//! response was never sent) gives the slot back, so the counts cannot leak.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::app::AppState;
use crate::config::ConnectionLimits;
use crate::metrics::Metrics;
use crate::net;

/// Seconds a refused page is asked to wait (`Retry-After`).
const RETRY_AFTER_SECS: &str = "5";

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefusal {
    /// The client's address holds its share already.
    PerAddress,
    /// The service holds as many as it allows.
    Total,
}

impl StreamRefusal {
    /// The metrics label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::PerAddress => "per-address",
            Self::Total => "total",
        }
    }
}

impl IntoResponse for StreamRefusal {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::PerAddress => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many open event streams from this address; the page polls instead\n",
            ),
            Self::Total => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many open event streams; the page polls instead\n",
            ),
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
        response
    }
}

/// One open stream, as the registry knows it.
#[derive(Debug)]
struct Open {
    /// The client address key ([`net::rate_limit_key`]).
    key: IpAddr,
    attempt: String,
    /// Woken when a newer stream of the same attempt takes this one's place.
    replaced: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Open>,
    per_address: HashMap<IpAddr, usize>,
    /// Open stream ids of each attempt, oldest first.
    per_attempt: HashMap<String, VecDeque<u64>>,
}

impl Inner {
    /// Forgets stream `id`; false if it was already gone.
    fn remove(&mut self, id: u64) -> Option<Open> {
        let open = self.open.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&open.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&open.key);
            }
        }
        if let Some(ids) = self.per_attempt.get_mut(&open.attempt) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.per_attempt.remove(&open.attempt);
            }
        }
        Some(open)
    }
}

/// The registry of open event streams, held in [`AppState`].
#[derive(Debug)]
pub struct EventStreams {
    per_attempt: usize,
    per_address: usize,
    total: usize,
    inner: Mutex<Inner>,
}

/// What [`EventStreams::open`] hands out: the new stream's id and the signal
/// that it was replaced.
#[derive(Debug)]
pub struct Opened {
    id: u64,
    replaced: Arc<Notify>,
}

impl EventStreams {
    /// An empty registry with the caps of `limits`.
    pub fn new(limits: &ConnectionLimits) -> Self {
        Self {
            per_attempt: limits.max_event_streams_per_attempt.max(1),
            per_address: limits.max_event_streams_per_address,
            total: limits.max_event_streams,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Registers a stream of `attempt` for a client at `ip`. When the attempt
    /// already has its share, the oldest of its streams is told to close and
    /// no longer counts; the newest is the page the user is looking at.
    /// Pair each success with one [`EventStreams::release`].
    pub fn open(
        &self,
        attempt: &str,
        ip: IpAddr,
        metrics: &Metrics,
    ) -> Result<Opened, StreamRefusal> {
        let key = net::rate_limit_key(ip);
        let mut inner = self.lock();
        let oldest = inner
            .per_attempt
            .get(attempt)
            .filter(|ids| ids.len() >= self.per_attempt)
            .and_then(|ids| ids.front().copied());
        // What the counts will be once the oldest has made room.
        let frees = |other: IpAddr| {
            usize::from(
                oldest
                    .and_then(|id| inner.open.get(&id))
                    .is_some_and(|o| o.key == other),
            )
        };
        let address_count = inner
            .per_address
            .get(&key)
            .copied()
            .unwrap_or(0)
            .saturating_sub(frees(key));
        let total_count = inner
            .open
            .len()
            .saturating_sub(usize::from(oldest.is_some()));
        let refusal = if address_count >= self.per_address {
            Some(StreamRefusal::PerAddress)
        } else if total_count >= self.total {
            Some(StreamRefusal::Total)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(inner);
            metrics.event_stream_refused(refusal.reason());
            return Err(refusal);
        }
        if let Some(old) = oldest.and_then(|id| inner.remove(id)) {
            old.replaced.notify_one();
            metrics.event_stream_replaced();
            metrics.event_stream_closed();
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let replaced = Arc::new(Notify::new());
        inner.open.insert(
            id,
            Open {
                key,
                attempt: attempt.to_owned(),
                replaced: Arc::clone(&replaced),
            },
        );
        *inner.per_address.entry(key).or_default() += 1;
        inner
            .per_attempt
            .entry(attempt.to_owned())
            .or_default()
            .push_back(id);
        drop(inner);
        metrics.event_stream_opened();
        Ok(Opened { id, replaced })
    }

    /// Gives stream `id`'s slot back (nothing if a newer stream already took it).
    pub fn release(&self, id: u64, metrics: &Metrics) {
        let removed = self.lock().remove(id);
        if removed.is_some() {
            metrics.event_stream_closed();
        }
    }

    /// Open streams in all.
    pub fn open_count(&self) -> usize {
        self.lock().open.len()
    }

    /// Open streams from the address block of `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock()
            .per_address
            .get(&net::rate_limit_key(ip))
            .copied()
            .unwrap_or(0)
    }
}

/// An open stream's place in the registry, owned by the stream: dropping it
/// gives the place back.
#[derive(Debug)]
pub struct StreamSlot {
    state: AppState,
    id: u64,
    replaced: Arc<Notify>,
}

impl StreamSlot {
    /// Takes a place for a stream of `attempt` from a client at `ip`.
    pub fn acquire(state: &AppState, attempt: &str, ip: IpAddr) -> Result<Self, StreamRefusal> {
        let Opened { id, replaced } = state.event_streams.open(attempt, ip, &state.metrics)?;
        Ok(Self {
            state: state.clone(),
            id,
            replaced,
        })
    }

    /// Completes once a newer stream of the same attempt has taken this
    /// one's place (the stream should then end).
    pub async fn replaced(&self) {
        self.replaced.notified().await;
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.state
            .event_streams
            .release(self.id, &self.state.metrics);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn registry(per_attempt: usize, per_address: usize, total: usize) -> EventStreams {
        EventStreams::new(&ConnectionLimits {
            max_event_streams_per_attempt: per_attempt,
            max_event_streams_per_address: per_address,
            max_event_streams: total,
            ..ConnectionLimits::default()
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_new_stream_of_a_full_attempt_replaces_the_oldest() {
        let metrics = Metrics::default();
        let streams = registry(3, 10, 10);
        let a = ip("192.0.2.1");
        let first = streams.open("att", a, &metrics).unwrap();
        let second = streams.open("att", a, &metrics).unwrap();
        let _third = streams.open("att", a, &metrics).unwrap();
        let _fourth = streams.open("att", a, &metrics).unwrap();
        assert_eq!(streams.open_count(), 3);
        // The first was told to close; the second was not.
        tokio::time::timeout(Duration::from_secs(1), first.replaced.notified())
            .await
            .expect("the oldest is replaced");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), second.replaced.notified())
                .await
                .is_err()
        );
        // Its late release changes nothing.
        streams.release(first.id, &metrics);
        assert_eq!(streams.open_count(), 3);
        let text = metrics.render();
        assert!(text.contains("sqrl_open_event_streams 3\n"), "{text}");
        assert!(text.contains("sqrl_replaced_event_streams_total 1\n"));
    }

    #[test]
    fn caps_per_address_and_in_all() {
        let metrics = Metrics::default();
        let streams = registry(3, 2, 3);
        let a = ip("192.0.2.1");
        let x = streams.open("x", a, &metrics).unwrap();
        streams.open("y", a, &metrics).unwrap();
        assert_eq!(
            streams.open("z", a, &metrics).unwrap_err(),
            StreamRefusal::PerAddress
        );
        // One /64 is one address.
        let v6 = ip("2001:db8:1:2::1");
        streams.open("v", v6, &metrics).unwrap();
        assert_eq!(
            streams
                .open("w", ip("2001:db8:1:2:ffff::9"), &metrics)
                .unwrap_err(),
            StreamRefusal::Total
        );
        streams.release(x.id, &metrics);
        streams.open("z", a, &metrics).unwrap();
        assert_eq!(
            streams.open("u", a, &metrics).unwrap_err(),
            StreamRefusal::PerAddress
        );
        let text = metrics.render();
        assert!(text.contains("sqrl_refused_event_streams_total{reason=\"per-address\"} 2"));
        assert!(text.contains("sqrl_refused_event_streams_total{reason=\"total\"} 1"));
    }

    #[test]
    fn replacing_at_the_caps_is_allowed() {
        let metrics = Metrics::default();
        let streams = registry(1, 1, 1);
        let a = ip("192.0.2.1");
        streams.open("x", a, &metrics).unwrap();
        // Same attempt: the new one takes the old one's place.
        streams.open("x", a, &metrics).unwrap();
        assert_eq!(streams.open_count(), 1);
        // Another attempt does not.
        assert!(streams.open("y", a, &metrics).is_err());
    }

    #[test]
    fn releasing_everything_leaves_nothing_behind() {
        let metrics = Metrics::default();
        let streams = registry(3, 100, 100);
        let ids: Vec<u64> = (0..50)
            .map(|i| {
                streams
                    .open(
                        &format!("a{}", i % 7),
                        ip(&format!("192.0.2.{}", i % 5)),
                        &metrics,
                    )
                    .unwrap()
                    .id
            })
            .collect();
        for id in ids {
            streams.release(id, &metrics);
        }
        let inner = streams.lock();
        assert!(inner.open.is_empty());
        assert!(inner.per_address.is_empty());
        assert!(inner.per_attempt.is_empty());
        drop(inner);
        assert!(metrics.render().contains("sqrl_open_event_streams 0\n"));
    }
}
