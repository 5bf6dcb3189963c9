//! The login loops: C of them at once, each with its own browser and phone
//! connections, taking phones from a shared pool, until the window ends.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::args::{Config, Stop};
use crate::flows::{self, Devices, Settings};
use crate::outcome::Trace;
use crate::phone::Phone;
use crate::stats::Collector;

/// The phones not in a login right now. A phone does one login at a time,
/// as a person does; phones are handed out in turn, so with more phones
/// than loops every phone's first login (a new identity) comes before any
/// phone's second.
#[derive(Debug)]
pub struct PhonePool {
    idle: Mutex<VecDeque<Phone>>,
}

impl PhonePool {
    /// Makes `count` identities.
    pub fn generate(count: usize) -> Self {
        Self {
            idle: Mutex::new((0..count).map(|_| Phone::generate()).collect()),
        }
    }

    fn take(&self) -> Phone {
        // A poisoned lock only means another loop panicked while holding it;
        // the queue itself is still whole.
        let phone = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        // The configuration keeps at least one phone per loop, so the pool
        // is never empty; should it be, a new identity does no harm.
        phone.unwrap_or_else(Phone::generate)
    }

    fn give_back(&self, phone: Phone) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(phone);
    }
}

/// When the loops stop starting logins.
#[derive(Debug, Clone)]
enum Limit {
    Until(Instant),
    Count(Arc<AtomicU64>),
}

impl Limit {
    /// Takes the right to start one more login.
    fn claim(&self) -> bool {
        match self {
            Limit::Until(deadline) => Instant::now() < *deadline,
            Limit::Count(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            Limit::Until(deadline) => Some(*deadline),
            Limit::Count(_) => None,
        }
    }
}

/// What a phase gives back: the loops' devices (their connections stay
/// open for the next phase), the merged records, and how long it took.
#[derive(Debug)]
pub struct Phase {
    /// The loops' devices.
    pub devices: Vec<Devices>,
    /// Every login of the phase.
    pub collector: Collector,
    /// From the first login's start to the last one's end.
    pub elapsed: Duration,
}

/// Runs the loops until `stop`: one tokio task per loop.
pub async fn run_phase(
    config: &Config,
    pool: &Arc<PhonePool>,
    devices: Vec<Devices>,
    stop: Stop,
) -> Result<Phase, String> {
    let started = Instant::now();
    let limit = match stop {
        Stop::After(duration) => Limit::Until(started + duration),
        Stop::Logins(count) => Limit::Count(Arc::new(AtomicU64::new(count))),
    };
    let loops = devices.len().max(1);
    // Each loop starts a login every `loops / rate` seconds, the loops
    // staggered over one such interval.
    let interval = config
        .rate
        .map(|rate| Duration::from_secs_f64(loops as f64 / rate));
    let mut tasks = Vec::with_capacity(loops);
    for (index, devices) in devices.into_iter().enumerate() {
        let settings = config.settings.clone();
        let pool = Arc::clone(pool);
        let limit = limit.clone();
        let first = interval.map(|every| started + every.mul_f64(index as f64 / loops as f64));
        tasks.push(tokio::spawn(login_loop(
            settings, devices, pool, limit, interval, first,
        )));
    }
    let mut all = Collector::default();
    let mut kept = Vec::with_capacity(loops);
    for task in tasks {
        let (devices, collector) = task
            .await
            .map_err(|e| format!("a login loop failed: {e}"))?;
        all.merge(collector);
        kept.push(devices);
    }
    Ok(Phase {
        devices: kept,
        collector: all,
        elapsed: started.elapsed(),
    })
}

async fn login_loop(
    settings: Settings,
    mut devices: Devices,
    pool: Arc<PhonePool>,
    limit: Limit,
    interval: Option<Duration>,
    mut next: Option<Instant>,
) -> (Devices, Collector) {
    let mut collector = Collector::default();
    loop {
        // Paced: wait for this loop's next slot. A loop that falls behind
        // keeps its schedule (it does not skip slots), so the lag shows how
        // far the server is from sustaining the rate.
        if let (Some(at), Some(every)) = (next, interval) {
            if limit.deadline().is_some_and(|deadline| at >= deadline) {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
            collector
                .lag
                .push(Instant::now().saturating_duration_since(at));
            next = Some(at + every);
        }
        if !limit.claim() {
            break;
        }
        let phone = pool.take();
        let mut trace = Trace::default();
        let started = Instant::now();
        let result = flows::login(&settings, &mut devices, &phone, &mut trace)
            .await
            .map(|()| started.elapsed());
        pool.give_back(phone);
        collector.record(trace, result);
    }
    (devices, collector)
}
