//! The world's state and its dynamics, one tick at a time.
//!
//! Per tick and service: demand from the workload curve and events; healthy capacity from
//! ready replicas in zones that are up; served = min(demand, capacity); overload sheds
//! requests and raises latency; bad versions add errors (once past their onset); failing
//! dependencies fail their dependents in proportion. Signals are recorded per tick; a
//! metric blackout hides them.
//!
//! Layout, for speed (a proving-ground day is hundreds of services times thousands of ticks):
//! what a tick reads and writes of each service lives in one compact [`Live`] per service,
//! in a vector in dependency order; the declared spec, the zones and the version history
//! stay in [`Service`], which a tick touches only while replicas are starting or a zone is
//! down. Two hours of signals are one ring of rows, a row per tick ([`History`]). Who
//! matches which event and fault is worked out once per change of the services
//! ([`TickIndex`]), not per tick and service. `observe` builds each view straight from
//! that state. All of it leaves the series bit for bit as it was: the same operations on
//! the same values in the same order, and the same random draws.

use crate::spec::{FaultKind, ServiceSpec, Tier, VersionSpec, WorldSpec};
use airlock_core::Timestamp;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Latency reported for requests that time out or hit nothing.
pub const TIMEOUT_MS: f64 = 5000.0;
/// How much history each service keeps (for headroom and observation), in seconds.
const HISTORY_S: i64 = 2 * 3600;
/// Days of hourly demand peaks kept per service, for the demand expected at the same hours.
const PROFILE_DAYS: i64 = 7;
const HOUR_MS: i64 = 3_600_000;

/// Why the world refused something.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("invalid world: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("unknown service `{0}`")]
    UnknownService(String),
    #[error("unknown environment `{0}`")]
    UnknownEnvironment(String),
}

/// One tick's signals of one service.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Signals {
    pub t: Timestamp,
    pub demand_rps: f64,
    pub capacity_rps: f64,
    pub replicas_ready: u32,
    pub replicas_desired: u32,
    pub availability: f64,
    pub error_rate: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Zone {
    ready: u32,
    /// Times at which starting replicas become ready.
    starting: Vec<Timestamp>,
}

impl Zone {
    fn total(&self) -> u32 {
        self.ready + self.starting.len() as u32
    }
}

/// A service's declared spec and the state a tick rarely reads; see [`Live`] for the rest.
#[derive(Debug, Clone)]
struct Service {
    spec: ServiceSpec,
    /// The spec's names as observations share them.
    shown: Shown,
    /// Its position in `Sim::order`: its [`Live`] in `Sim::live`, its column of
    /// `Sim::history`.
    pos: usize,
    exists: bool,
    version: Arc<str>,
    zones: BTreeMap<String, Zone>,
    /// Desired replicas per zone (what `observe` shows), refreshed with the mirrored fields
    /// of [`Live`]: starting replicas becoming ready or crashing do not change it. Shared
    /// with the observations made until it changes.
    desired: Arc<BTreeMap<String, u32>>,
    generation: u64,
    /// Versions this service ran before, most recent last.
    past_versions: Vec<String>,
    /// The first tick (counting from 1) of its history in `Sim::history`.
    first_tick: u64,
    /// The highest observed demand of each hour (hour index since the epoch), for the last
    /// `PROFILE_DAYS` days: what "the same hours of the previous days" reads. The latest
    /// hour, which every observed tick updates, is `Live::hour_now`; these are the ones
    /// before it, in order.
    hourly: VecDeque<(i64, f64)>,
}

/// A service's fixed names, built once and shared by every observation of it (an agent
/// observes once a simulated minute; copying them was most of what observing cost).
#[derive(Debug, Clone)]
struct Shown {
    name: Arc<str>,
    env: Arc<str>,
    region: Arc<str>,
    depends_on: Arc<[Arc<str>]>,
}

impl Shown {
    fn of(spec: &ServiceSpec) -> Self {
        Self {
            name: spec.name.as_str().into(),
            env: spec.env.as_str().into(),
            region: spec.region.as_str().into(),
            depends_on: spec.depends_on.iter().map(|d| d.as_str().into()).collect(),
        }
    }
}

/// What a tick reads and writes of one service, kept together (two cache lines). The
/// fields marked as mirrored are copies of [`Service`] state, refreshed by [`Sim::resync`]
/// after every change of it.
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Live {
    /// The spec's demand curve, capacity and latency (fixed).
    base_rps: f64,
    diurnal_amplitude: f64,
    peak_hour: f64,
    noise: f64,
    capacity_rps: f64,
    base_latency_ms: f64,
    /// Mirrored: whether the service exists.
    exists: bool,
    /// Mirrored: the current version's declared behaviour ([`VersionEffect::NONE`] if it is
    /// not declared).
    effect: VersionEffect,
    /// When the current version was set on the service (delayed regressions count from here).
    version_since: Timestamp,
    /// Mirrored: ready replicas over all zones, and whether no replica is starting; then a
    /// tick with every zone up needs nothing else of the zones.
    ready: u32,
    settled: bool,
    requests_total: f64,
    errors_total: f64,
    /// The latest hour of `Service::hourly` and its highest observed demand so far.
    hour_now: Option<(i64, f64)>,
}

// The two cache lines `Live` promises.
const _: () = assert!(std::mem::size_of::<Live>() == 128);

/// One tick's signals of one service as history keeps them: the rest of [`Signals`]
/// follows from the tick (`t`) and from `availability` (`error_rate`, as the tick computes
/// it).
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    demand_rps: f64,
    capacity_rps: f64,
    availability: f64,
    p99_ms: f64,
    replicas_ready: u32,
    replicas_desired: u32,
    /// Whether the signals were observable (not blacked out).
    seen: bool,
}

impl Entry {
    fn signals(&self, t: Timestamp) -> Signals {
        Signals {
            t,
            demand_rps: self.demand_rps,
            capacity_rps: self.capacity_rps,
            replicas_ready: self.replicas_ready,
            replicas_desired: self.replicas_desired,
            availability: self.availability,
            error_rate: 1.0 - self.availability,
            p99_ms: self.p99_ms,
        }
    }
}

/// Every service's signals of the last `HISTORY_S` of ticks: one row per tick, one column
/// per service (its position in `Sim::order`), rows in a ring. A tick writes one row, in
/// one place, instead of one entry in each service's own buffer.
#[derive(Debug, Clone, Default)]
struct History {
    /// Columns: services.
    width: usize,
    /// Rows kept.
    rows: usize,
    /// Tick `k`'s row (counting from 1) starts at `((k - 1) % rows) * width`; rows are
    /// added until there are `rows` of them.
    data: Vec<Entry>,
}

impl History {
    fn new(rows: usize, width: usize) -> Self {
        Self {
            width,
            rows: rows.max(1),
            data: Vec::new(),
        }
    }

    fn start(&self, tick: u64) -> usize {
        ((tick - 1) % self.rows as u64) as usize * self.width
    }

    /// Tick `tick`'s row, to write; `tick` follows the last one written.
    fn row_mut(&mut self, tick: u64) -> &mut [Entry] {
        let at = self.start(tick);
        if self.data.len() < at + self.width {
            // The ring's whole size at once: growing it row by row copied it over and over.
            self.data
                .reserve_exact(self.rows * self.width - self.data.len());
            self.data.resize(at + self.width, Entry::default());
        }
        &mut self.data[at..at + self.width]
    }

    /// Column `pos` from tick `first` (or the oldest kept) to tick `last`, oldest first.
    fn column(&self, pos: usize, first: u64, last: u64) -> impl Iterator<Item = (u64, &Entry)> {
        let oldest = last.saturating_sub(self.rows as u64) + 1;
        (first.max(oldest)..=last).map(move |k| (k, &self.data[self.start(k) + pos]))
    }

    /// The same history with `width` columns, column `from` becoming column `to` for each
    /// `(from, to)` in `moves`; `ticks` rows have been written.
    fn relayout(&mut self, width: usize, moves: &[(usize, usize)], ticks: u64) {
        let filled = ticks.min(self.rows as u64) as usize;
        let mut data = vec![Entry::default(); filled * width];
        for r in 0..filled {
            for &(from, to) in moves {
                data[r * width + to] = self.data[r * self.width + from];
            }
        }
        self.width = width;
        self.data = data;
    }
}

/// A declared version's behaviour, as a tick applies it.
#[derive(Debug, Clone, Copy)]
struct VersionEffect {
    error_rate: f64,
    latency_factor: f64,
    onset_ms: i64,
}

impl VersionEffect {
    /// An undeclared version: no errors, no slowdown, at once (what the tick applied when
    /// it found no declared version).
    const NONE: Self = Self {
        error_rate: 0.0,
        latency_factor: 1.0,
        onset_ms: 0,
    };

    /// The first declared version of that name, as the tick used to look it up.
    fn of(versions: &[VersionSpec], name: &str) -> Self {
        versions
            .iter()
            .find(|v| v.name == name)
            .map_or(Self::NONE, |v| Self {
                error_rate: v.error_rate,
                latency_factor: v.latency_factor,
                onset_ms: v.onset.ms(),
            })
    }
}

impl Live {
    fn new(spec: &ServiceSpec, version_since: Timestamp) -> Self {
        Self {
            base_rps: spec.demand.base_rps,
            diurnal_amplitude: spec.demand.diurnal_amplitude,
            peak_hour: spec.demand.peak_hour,
            noise: spec.demand.noise,
            capacity_rps: spec.capacity_rps,
            base_latency_ms: spec.base_latency_ms,
            exists: false,
            effect: VersionEffect::NONE,
            version_since,
            ready: 0,
            settled: true,
            requests_total: 0.0,
            errors_total: 0.0,
            hour_now: None,
        }
    }
}

/// The desired state of one service: what snapshots hold and reverts put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub exists: bool,
    pub version: String,
    pub replicas: BTreeMap<String, u32>,
    pub generation: u64,
}

impl Desired {
    /// Total desired replicas.
    pub fn total(&self) -> u32 {
        if self.exists {
            self.replicas.values().sum()
        } else {
            0
        }
    }
}

/// What an agent or operator can see of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub name: Arc<str>,
    pub env: Arc<str>,
    pub region: Arc<str>,
    pub tier: Tier,
    pub exists: bool,
    pub version: Arc<str>,
    pub replicas_desired: u32,
    pub replicas_ready: u32,
    pub capacity_rps_per_replica: f64,
    pub cold_start_s: u64,
    pub depends_on: Arc<[Arc<str>]>,
    pub dependents: Vec<Arc<str>>,
    /// Desired replicas per availability zone.
    pub zones: Arc<BTreeMap<String, u32>>,
    /// The last tick's signals; `None` during a metric blackout.
    pub signals: Option<Signals>,
}

/// Everything observable at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub now: Timestamp,
    pub services: Vec<ServiceView>,
}

impl Observation {
    /// One service's view.
    pub fn service(&self, name: &str) -> Option<&ServiceView> {
        self.services.iter().find(|s| *s.name == *name)
    }
}

/// The sandbox cloud.
#[derive(Debug, Clone)]
pub struct Sim {
    spec: WorldSpec,
    start: Timestamp,
    now: Timestamp,
    tick_ms: i64,
    rng: ChaCha8Rng,
    services: BTreeMap<String, Service>,
    /// Per service, in `order` (`Service::pos`): what a tick reads and writes.
    live: Vec<Live>,
    /// Ticks run so far.
    ticks: u64,
    history: History,
    order: Vec<String>,
    last: BTreeMap<String, Signals>,
    /// A tick's signals in `order`, kept between ticks only to reuse the buffer.
    sigs: Vec<Signals>,
    /// `order` as positions and who matches which event and fault, rebuilt wherever `order`
    /// changes. A tick walks these instead of looking names up.
    index: TickIndex,
}

/// See [`Sim::index`].
#[derive(Debug, Clone, Default)]
struct TickIndex {
    /// For each position in `order`: the service's position in name order.
    slot: Vec<usize>,
    /// For each position in name order: the service's position in `order`.
    pos: Vec<usize>,
    /// For each position in `order`: its dependencies' positions in `order` (earlier ones).
    deps: Vec<Vec<usize>>,
    /// For each position in `order`: the events that select it, in declared order.
    events: Vec<Vec<usize>>,
    /// For each position in `order`: the faults aimed at it or at `*` (other than zone
    /// outages), in declared order.
    faults: Vec<Vec<usize>>,
    /// For each position in name order: the services that list it among their
    /// dependencies (position in `order`, name), in name order, each once.
    callers: Vec<Vec<(usize, Arc<str>)>>,
}

impl TickIndex {
    fn build(order: &[String], services: &BTreeMap<String, Service>, spec: &WorldSpec) -> Self {
        let by_name: BTreeMap<&str, usize> = services
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let at: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let slot: Vec<usize> = order.iter().map(|n| by_name[n.as_str()]).collect();
        let mut pos = vec![0; services.len()];
        for (i, s) in slot.iter().enumerate() {
            pos[*s] = i;
        }
        let mut callers: Vec<Vec<(usize, Arc<str>)>> = vec![Vec::new(); services.len()];
        for (name, s) in services {
            let j = at[name.as_str()];
            for d in &s.spec.depends_on {
                if let Some(list) = by_name.get(d.as_str()).map(|&x| &mut callers[x])
                    && list.last().map(|c| c.0) != Some(j)
                {
                    list.push((j, s.shown.name.clone()));
                }
            }
        }
        Self {
            deps: order
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    services[n.as_str()]
                        .spec
                        .depends_on
                        .iter()
                        .filter_map(|d| at.get(d.as_str()).copied())
                        .filter(|p| *p < i)
                        .collect()
                })
                .collect(),
            events: order
                .iter()
                .map(|n| {
                    (spec.events.iter().enumerate())
                        .filter(|(_, e)| e.services.iter().any(|s| s == "*" || s == n))
                        .map(|(k, _)| k)
                        .collect()
                })
                .collect(),
            faults: order
                .iter()
                .map(|n| {
                    (spec.faults.iter().enumerate())
                        .filter(|(_, f)| {
                            f.kind != FaultKind::AzOutage && (f.target == "*" || &f.target == n)
                        })
                        .map(|(k, _)| k)
                        .collect()
                })
                .collect(),
            slot,
            pos,
            callers,
        }
    }
}

/// Services in dependency order (dependencies first), or `None` on a cycle.
pub fn topo_order(services: &[ServiceSpec]) -> Option<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    let mut sorted: Vec<&ServiceSpec> = services.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    while order.len() < sorted.len() {
        let before = order.len();
        for s in &sorted {
            if !done.contains(&s.name)
                && s.depends_on
                    .iter()
                    .all(|d| done.contains(d) || !sorted.iter().any(|x| &x.name == d))
            {
                done.insert(s.name.clone());
                order.push(s.name.clone());
            }
        }
        if order.len() == before {
            return None;
        }
    }
    Some(order)
}

fn spread(total: u32, zones: &[String]) -> BTreeMap<String, u32> {
    let n = zones.len().max(1) as u32;
    zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.clone(), total / n + u32::from((i as u32) < total % n)))
        .collect()
}

/// The hour of the day of `t`, as the demand curve reads it.
fn hour_of_day(t: Timestamp) -> f64 {
    (t.rem_euclid(86_400_000)) as f64 / 3_600_000.0
}

/// The daily demand curve at `hour` (of [`hour_of_day`]).
fn demand_curve(live: &Live, hour: f64) -> f64 {
    let phase = (hour - live.peak_hour) / 24.0 * std::f64::consts::TAU;
    live.base_rps * (1.0 + live.diurnal_amplitude * phase.cos())
}

impl Sim {
    /// A world at virtual time `start`, advancing `tick_s` seconds per tick, from `seed`.
    pub fn new(
        spec: WorldSpec,
        seed: u64,
        start: Timestamp,
        tick_s: u64,
    ) -> Result<Self, SimError> {
        let problems = spec.problems();
        if !problems.is_empty() {
            return Err(SimError::Invalid(problems));
        }
        let order = topo_order(&spec.services)
            .ok_or_else(|| SimError::Invalid(vec!["dependency cycle".into()]))?;
        let tick_ms = (tick_s.max(1) as i64) * 1000;
        let mut sim = Self {
            start,
            now: start,
            tick_ms,
            rng: ChaCha8Rng::seed_from_u64(seed),
            services: BTreeMap::new(),
            live: Vec::new(),
            ticks: 0,
            // Every service gets one history entry per tick, so two hours are a fixed count.
            history: History::new((HISTORY_S * 1000 / tick_ms) as usize + 1, 0),
            order,
            last: BTreeMap::new(),
            sigs: Vec::new(),
            index: TickIndex::default(),
            spec,
        };
        for s in sim.spec.services.clone() {
            let zones = sim.zones_of(&s.region);
            let replicas = match &s.placement {
                Some(place) => zones
                    .iter()
                    .map(|z| (z.clone(), place.get(z).copied().unwrap_or(0)))
                    .collect(),
                None => spread(s.replicas, &zones),
            };
            let svc = Service {
                pos: 0,
                shown: Shown::of(&s),
                desired: Arc::default(),
                exists: true,
                version: s.version.as_str().into(),
                zones: replicas
                    .into_iter()
                    .map(|(z, n)| {
                        (
                            z,
                            Zone {
                                ready: n,
                                starting: vec![],
                            },
                        )
                    })
                    .collect(),
                generation: 0,
                past_versions: vec![],
                first_tick: 1,
                hourly: VecDeque::new(),
                spec: s,
            };
            sim.services.insert(svc.spec.name.clone(), svc);
        }
        sim.reslot(BTreeMap::new());
        Ok(sim)
    }

    /// Numbers the services in `order`, gives each its [`Live`] and history column (kept by
    /// name, else new) and rebuilds the index: after any change of `order`.
    fn reslot(&mut self, mut old: BTreeMap<String, (usize, Live)>) {
        let mut live = Vec::with_capacity(self.order.len());
        let mut moves = Vec::new();
        for (pos, name) in self.order.iter().enumerate() {
            let Some(s) = self.services.get_mut(name) else {
                continue;
            };
            s.pos = pos;
            live.push(match old.remove(name) {
                Some((from, l)) => {
                    moves.push((from, pos));
                    l
                }
                None => {
                    s.first_tick = self.ticks + 1;
                    Live::new(&s.spec, self.now)
                }
            });
        }
        self.live = live;
        self.history.relayout(self.order.len(), &moves, self.ticks);
        let names: Vec<String> = self.order.clone();
        for name in names {
            self.resync(&name);
        }
        self.index = TickIndex::build(&self.order, &self.services, &self.spec);
    }

    /// Each service's [`Live`] and its position, by name, taken out for [`Sim::reslot`].
    fn take_live(&mut self) -> BTreeMap<String, (usize, Live)> {
        let mut live: Vec<Option<Live>> = std::mem::take(&mut self.live)
            .into_iter()
            .map(Some)
            .collect();
        (self.services.iter())
            .filter_map(|(n, s)| {
                let l = live.get_mut(s.pos).and_then(Option::take)?;
                Some((n.clone(), (s.pos, l)))
            })
            .collect()
    }

    /// Refreshes the mirrored fields of a service's [`Live`] after a change of its state.
    fn resync(&mut self, name: &str) {
        let Some(s) = self.services.get_mut(name) else {
            return;
        };
        s.desired = Arc::new(if s.exists {
            (s.zones.iter())
                .map(|(z, v)| (z.clone(), v.total()))
                .collect()
        } else {
            BTreeMap::new()
        });
        let l = &mut self.live[s.pos];
        l.exists = s.exists;
        l.effect = VersionEffect::of(&self.spec.versions, &s.version);
        l.ready = s.zones.values().map(|z| z.ready).sum();
        l.settled = s.zones.values().all(|z| z.starting.is_empty());
    }

    /// A service's [`Live`].
    fn live_of(&self, service: &str) -> Option<&Live> {
        self.services.get(service).map(|s| &self.live[s.pos])
    }

    /// The world's declared spec.
    pub fn spec(&self) -> &WorldSpec {
        &self.spec
    }
    /// Current virtual time.
    pub fn now(&self) -> Timestamp {
        self.now
    }
    /// Virtual start time.
    pub fn start(&self) -> Timestamp {
        self.start
    }
    /// Tick length in milliseconds.
    pub fn tick_ms(&self) -> i64 {
        self.tick_ms
    }

    fn zones_of(&self, region: &str) -> Vec<String> {
        self.spec
            .regions
            .iter()
            .find(|r| r.name == region)
            .map(|r| r.azs.clone())
            .unwrap_or_default()
    }

    fn elapsed_s(&self, t: Timestamp) -> u64 {
        ((t - self.start).max(0) / 1000) as u64
    }

    fn active(&self, at: crate::Secs, duration: Option<crate::Secs>, t: Timestamp) -> bool {
        let e = self.elapsed_s(t);
        e >= at.0 && duration.is_none_or(|d| e < at.0.saturating_add(d.0))
    }

    /// Whether a service's signals are blacked out now.
    pub fn blacked_out(&self, service: &str) -> bool {
        self.spec.faults.iter().any(|f| {
            f.kind == FaultKind::MetricBlackout
                && (f.target == "*" || f.target == service)
                && self.active(f.at, Some(f.duration), self.now)
        })
    }

    /// Advances the world by one tick.
    pub fn tick(&mut self) {
        self.now += self.tick_ms;
        self.ticks += 1;
        let now = self.now;
        let dt = self.tick_ms as f64 / 1000.0;
        let down_zones: BTreeSet<String> = self
            .spec
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::AzOutage && self.active(f.at, Some(f.duration), now))
            .map(|f| f.target.clone())
            .collect();
        // Crashed replicas come back cold when their fault ends, i.e. on the first tick at or
        // after its end (the end need not fall on a tick).
        let (was, is) = (self.elapsed_s(now - self.tick_ms), self.elapsed_s(now));
        let ending_crashes: Vec<(String, u32)> = self
            .spec
            .faults
            .iter()
            .filter(|f| {
                let end = f.at.0.saturating_add(f.duration.0);
                f.kind == FaultKind::ReplicaCrash && was < end && end <= is
            })
            .map(|f| (f.target.clone(), f.count.unwrap_or(1)))
            .collect();
        for (target, count) in ending_crashes {
            let names: Vec<String> = self.matching(&target);
            for name in names {
                if let Some(s) = self.services.get_mut(&name) {
                    let cold = s.spec.cold_start.ms();
                    let mut left = count;
                    for z in s.zones.values_mut() {
                        while left > 0 && z.ready > 0 {
                            z.ready -= 1;
                            z.starting.push(now + cold);
                            left -= 1;
                        }
                    }
                }
                self.resync(&name);
            }
        }
        // What is active this tick, found once rather than per service.
        let events: Vec<bool> = (self.spec.events.iter())
            .map(|e| self.active(e.at, e.duration, now))
            .collect();
        let faults: Vec<bool> = (self.spec.faults.iter())
            .map(|f| self.active(f.at, Some(f.duration), now))
            .collect();
        let elapsed = self.elapsed_s(now);
        let hour_of_day = hour_of_day(now);
        let hour = now.div_euclid(HOUR_MS);
        let index = &self.index;
        let row = self.history.row_mut(self.ticks);
        let mut sigs = std::mem::take(&mut self.sigs);
        sigs.clear();
        // The services in name order, for the few whose zones must be read.
        let mut svcs: Option<Vec<&Service>> = None;
        let mut unsettled = false;
        // The services (by position) whose latest hour ended, with that hour's peak.
        let mut rolled: Vec<(usize, Option<(i64, f64)>)> = Vec::new();
        // In dependency order: each service's dependencies are computed first.
        for (i, live) in self.live.iter_mut().enumerate() {
            let noise_draw: f64 = {
                // Box–Muller from two uniform draws; always two draws per service per tick.
                let u1: f64 = self.rng.random::<f64>().max(1e-12);
                let u2: f64 = self.rng.random::<f64>();
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            };
            let mut factor = 1.0;
            for &k in &index.events[i] {
                if events[k] {
                    let e = &self.spec.events[k];
                    let since = (elapsed - e.at.0) as f64;
                    let ramp = if e.ramp.0 == 0 {
                        1.0
                    } else {
                        (since / e.ramp.0 as f64).min(1.0)
                    };
                    factor *= 1.0 + (e.factor - 1.0) * ramp;
                }
            }
            let demand =
                (demand_curve(live, hour_of_day) * factor * (1.0 + live.noise * noise_draw))
                    .max(0.0);
            let (mut crashed, mut slowdown, mut seen) = (0u32, 1.0_f64, true);
            if !index.faults[i].is_empty() {
                let active = || {
                    (index.faults[i].iter())
                        .filter(|&&k| faults[k])
                        .map(|&k| &self.spec.faults[k])
                };
                crashed = active()
                    .filter(|f| f.kind == FaultKind::ReplicaCrash)
                    .map(|f| f.count.unwrap_or(1))
                    .sum();
                slowdown = active()
                    .filter(|f| f.kind == FaultKind::DependencySlowdown)
                    .map(|f| f.factor.unwrap_or(3.0).max(1.0))
                    .product();
                seen = !active().any(|f| f.kind == FaultKind::MetricBlackout);
            }
            let v = live.effect;
            let (err_v, lat_v) = if now - live.version_since >= v.onset_ms {
                (v.error_rate, v.latency_factor)
            } else {
                (0.0, 1.0)
            };
            let mut ready: u32 = 0;
            let mut desired: u32 = 0;
            if live.exists {
                if live.settled && down_zones.is_empty() {
                    (ready, desired) = (live.ready, live.ready);
                } else {
                    let svcs = svcs.get_or_insert_with(|| self.services.values().collect());
                    for (zname, z) in &svcs[index.slot[i]].zones {
                        desired += z.total();
                        let up = z.ready + z.starting.iter().filter(|t| **t <= now).count() as u32;
                        if !down_zones.contains(zname) {
                            ready += up;
                        }
                    }
                }
            }
            let lost = crashed.min(ready);
            ready -= lost;
            // x / 1 is x: most services are not slowed down.
            let capacity = if slowdown == 1.0 {
                ready as f64 * live.capacity_rps
            } else {
                ready as f64 * live.capacity_rps / slowdown
            };
            let (mut dep_ok, mut dep_p99) = (1.0_f64, 0.0_f64);
            for &d in &index.deps[i] {
                let ds = &sigs[d];
                dep_ok *= ds.availability;
                dep_p99 = dep_p99.max(ds.p99_ms);
            }
            let served = demand.min(capacity);
            let success = served * (1.0 - err_v) * dep_ok;
            let availability = if !live.exists {
                0.0
            } else if demand <= 1e-9 {
                // A pure backend (no demand of its own) serves its callers only while it
                // has capacity: at zero replicas they fail through it.
                if capacity > 0.0 { dep_ok } else { 0.0 }
            } else {
                (success / demand).clamp(0.0, 1.0)
            };
            let util = if capacity > 0.0 {
                demand / capacity
            } else {
                f64::INFINITY
            };
            let own = if util < 1.0 {
                live.base_latency_ms * lat_v * slowdown * (1.0 + 2.0 * util.powi(6))
            } else {
                TIMEOUT_MS
            };
            let p99 = if live.exists {
                (own + dep_p99).min(TIMEOUT_MS)
            } else {
                TIMEOUT_MS
            };
            sigs.push(Signals {
                t: now,
                demand_rps: demand,
                capacity_rps: capacity,
                replicas_ready: ready,
                replicas_desired: desired,
                availability,
                error_rate: 1.0 - availability,
                p99_ms: p99,
            });
            row[i] = Entry {
                demand_rps: demand,
                capacity_rps: capacity,
                availability,
                p99_ms: p99,
                replicas_ready: ready,
                replicas_desired: desired,
                seen,
            };
            live.requests_total += demand * dt;
            live.errors_total += (demand - availability * demand) * dt;
            unsettled |= !live.settled;
            if seen {
                match &mut live.hour_now {
                    Some((h, peak)) if *h == hour => *peak = peak.max(demand),
                    _ => {
                        let done = live.hour_now.replace((hour, demand));
                        rolled.push((i, done));
                    }
                }
            }
        }
        drop(svcs);
        // Hours that ended move to `Service::hourly`, which keeps `PROFILE_DAYS` of them.
        for (i, done) in rolled {
            let Some(s) = self.services.get_mut(&self.order[i]) else {
                continue;
            };
            s.hourly.extend(done);
            while s
                .hourly
                .front()
                .is_some_and(|(h, _)| *h < hour - PROFILE_DAYS * 24)
            {
                s.hourly.pop_front();
            }
        }
        // The truth, in name order, without looking names up.
        if self.last.len() == self.services.len() {
            for (slot, last) in self.last.values_mut().enumerate() {
                *last = sigs[index.pos[slot]];
            }
        } else {
            for (slot, name) in self.services.keys().enumerate() {
                self.last.insert(name.clone(), sigs[index.pos[slot]]);
            }
        }
        self.sigs = sigs;
        // Starting replicas whose time has come are ready.
        if unsettled {
            for s in self.services.values_mut() {
                let live = &mut self.live[s.pos];
                if live.settled {
                    continue;
                }
                for z in s.zones.values_mut() {
                    let before = z.starting.len();
                    z.starting.retain(|t| *t > now);
                    z.ready += (before - z.starting.len()) as u32;
                }
                live.ready = s.zones.values().map(|z| z.ready).sum();
                live.settled = s.zones.values().all(|z| z.starting.is_empty());
            }
        }
    }

    /// A service's history, oldest first: each tick's time and entry.
    fn entries(&self, service: &str) -> Option<impl Iterator<Item = (Timestamp, &Entry)>> {
        self.entries_after(service, Timestamp::MIN)
    }

    /// [`Sim::entries`] from the first tick after `after`: the recent window of a ring that
    /// keeps more, without walking the older rows.
    fn entries_after(
        &self,
        service: &str,
        after: Timestamp,
    ) -> Option<impl Iterator<Item = (Timestamp, &Entry)>> {
        let s = self.services.get(service)?;
        // Tick k is at `start + k * tick_ms`: the first after `after` is the one past the
        // floor of the distance in ticks.
        let skip = after
            .saturating_sub(self.start)
            .div_euclid(self.tick_ms)
            .saturating_add(1);
        let first = s.first_tick.max(u64::try_from(skip).unwrap_or(0));
        let (start, tick_ms) = (self.start, self.tick_ms);
        Some(
            (self.history.column(s.pos, first, self.ticks))
                .map(move |(k, e)| (start + k as i64 * tick_ms, e)),
        )
    }

    fn matching(&self, target: &str) -> Vec<String> {
        self.services
            .keys()
            .filter(|n| target == "*" || n.as_str() == target)
            .cloned()
            .collect()
    }

    /// The last tick's true signals of every service (what scoring uses).
    pub fn truth(&self) -> &BTreeMap<String, Signals> {
        &self.last
    }

    /// Cumulative request and error counters of a service; `None` during a blackout.
    pub fn counters(&self, service: &str) -> Option<airlock_core::slo::Counters> {
        if self.blacked_out(service) {
            return None;
        }
        let s = self.live_of(service)?;
        Some(airlock_core::slo::Counters {
            requests_total: s.requests_total,
            errors_total: s.errors_total,
            p99_ms: self.last.get(service).map_or(0.0, |x| x.p99_ms),
        })
    }

    /// Requests, errors and worst p99 of a service over the last `window_s` seconds;
    /// `None` during a blackout or before the first tick.
    pub fn recent_sample(&self, service: &str, window_s: u64) -> Option<airlock_core::slo::Sample> {
        if self.blacked_out(service) {
            return None;
        }
        let dt = self.tick_ms as f64 / 1000.0;
        let since = self.now - (window_s as i64) * 1000;
        let entries = self.entries_after(service, since)?;
        let recent: Vec<&Entry> = entries
            .filter(|(t, h)| h.seen && *t > since)
            .map(|(_, h)| h)
            .collect();
        if recent.is_empty() {
            return None;
        }
        Some(airlock_core::slo::Sample {
            requests: Some(recent.iter().map(|h| h.demand_rps * dt).sum()),
            errors: Some(
                recent
                    .iter()
                    .map(|h| h.demand_rps * (1.0 - h.availability) * dt)
                    .sum(),
            ),
            p99_ms: recent.iter().map(|h| h.p99_ms).reduce(f64::max),
        })
    }

    /// The 95th percentile of a service's observed demand over the last `window_s`
    /// seconds; `None` when nothing was observed (a blackout hides demand from the planner
    /// as from everyone else).
    pub fn recent_p95_demand(&self, service: &str, window_s: i64) -> Option<f64> {
        let since = self.now - window_s * 1000;
        let mut v: Vec<f64> = self
            .entries_after(service, since)?
            .filter(|(t, h)| h.seen && *t > since)
            .map(|(_, h)| h.demand_rps)
            .collect();
        if v.is_empty() {
            return None;
        }
        // The value at that rank of the sorted order, found without sorting it all.
        let idx = ((v.len() as f64) * 0.95).ceil() as usize;
        let rank = idx.saturating_sub(1).min(v.len() - 1);
        Some(*v.select_nth_unstable_by(rank, f64::total_cmp).1)
    }

    /// The highest demand observed at the same hours of the previous days, over the next
    /// `horizon_s` seconds from now (the hour now included); `None` without such history.
    pub fn same_hours_peak(&self, service: &str, horizon_s: i64) -> Option<f64> {
        let s = self.services.get(service)?;
        let hour_now = self.live[s.pos].hour_now;
        let now_h = self.now.div_euclid(HOUR_MS);
        let hours = (horizon_s * 1000).div_euclid(HOUR_MS).max(0);
        let mut peak: Option<f64> = None;
        for day in 1..=PROFILE_DAYS {
            for h in now_h..=now_h + hours {
                // Hours are in order, with gaps where a blackout hid them.
                let past = h - day * 24;
                let found = match hour_now {
                    Some((x, d)) if x == past => Some(d),
                    _ => (s.hourly.binary_search_by_key(&past, |(x, _)| *x))
                        .ok()
                        .map(|i| s.hourly[i].1),
                };
                if let Some(d) = found {
                    peak = Some(peak.map_or(d, |p: f64| p.max(d)));
                }
            }
        }
        peak
    }

    /// The demand a capacity change is judged against: the higher of the recent p95 (over
    /// `recent_s`) and the peak of the same hours of the previous days over `horizon_s`.
    /// Only observed demand counts.
    pub fn expected_demand(&self, service: &str, recent_s: i64, horizon_s: i64) -> Option<f64> {
        match (
            self.recent_p95_demand(service, recent_s),
            self.same_hours_peak(service, horizon_s),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Live services that call `service` directly.
    pub fn dependents(&self, service: &str) -> Vec<String> {
        self.services
            .values()
            .filter(|s| s.exists && s.spec.depends_on.iter().any(|d| d == service))
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// Everything downstream of `services` (transitive dependents), excluding them.
    pub fn downstream(&self, services: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut frontier: Vec<String> = services.iter().cloned().collect();
        while let Some(s) = frontier.pop() {
            for d in self.dependents(&s) {
                if !services.contains(&d) && out.insert(d.clone()) {
                    frontier.push(d);
                }
            }
        }
        out
    }

    /// What an agent can see now.
    ///
    /// Built straight from the state: names, dependencies and desired replicas are shared
    /// with the state (reference-counted), so a view allocates only its list of dependents.
    /// An agent observes once a simulated minute, so this is a large part of a simulated day.
    pub fn observe(&self) -> Observation {
        // The blackouts now; a service is blacked out if one of them aims at it or at `*`.
        let blackouts: Vec<bool> = (self.spec.faults.iter())
            .map(|f| {
                f.kind == FaultKind::MetricBlackout && self.active(f.at, Some(f.duration), self.now)
            })
            .collect();
        let any_blackout = blackouts.contains(&true);
        // `last` holds every service once a tick has run, in the same (name) order.
        let last_by_slot = self.last.len() == self.services.len();
        let mut last = self.last.values();
        let mut services = Vec::with_capacity(self.services.len());
        for (slot, s) in self.services.values().enumerate() {
            let dark = any_blackout && (self.index.faults[s.pos].iter()).any(|&k| blackouts[k]);
            let sig = if last_by_slot {
                last.next().copied()
            } else {
                self.last.get(&s.spec.name).copied()
            };
            // `desired` is empty and `ready` unused when the service does not exist.
            let desired: u32 = s.desired.values().sum();
            let ready = if s.exists { self.live[s.pos].ready } else { 0 };
            services.push(ServiceView {
                name: s.shown.name.clone(),
                env: s.shown.env.clone(),
                region: s.shown.region.clone(),
                tier: s.spec.tier,
                exists: s.exists,
                version: s.version.clone(),
                replicas_desired: desired,
                replicas_ready: ready,
                capacity_rps_per_replica: s.spec.capacity_rps,
                cold_start_s: s.spec.cold_start.0,
                depends_on: s.shown.depends_on.clone(),
                dependents: (self.index.callers[slot].iter())
                    .filter(|(j, _)| self.live[*j].exists)
                    .map(|(_, name)| name.clone())
                    .collect(),
                zones: Arc::clone(&s.desired),
                signals: if dark { None } else { sig },
            });
        }
        Observation {
            now: self.now,
            services,
        }
    }

    /// Recent observable history of a service (empty during a blackout of now).
    pub fn history(&self, service: &str) -> Vec<Signals> {
        if self.blacked_out(service) {
            return Vec::new();
        }
        self.entries(service)
            .map(|entries| {
                entries
                    .filter(|(_, h)| h.seen)
                    .map(|(t, h)| h.signals(t))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn desired_of(&self, s: &Service) -> Desired {
        Desired {
            exists: s.exists,
            version: s.version.to_string(),
            replicas: if s.exists {
                s.zones
                    .iter()
                    .map(|(z, v)| (z.clone(), v.total()))
                    .collect()
            } else {
                BTreeMap::new()
            },
            generation: s.generation,
        }
    }

    /// The desired state of a service.
    pub fn desired(&self, service: &str) -> Result<Desired, SimError> {
        self.services
            .get(service)
            .map(|s| self.desired_of(s))
            .ok_or_else(|| SimError::UnknownService(service.into()))
    }

    /// A service's spec (kept after deletion so it can be recreated).
    pub fn service_spec(&self, service: &str) -> Option<&ServiceSpec> {
        self.services.get(service).map(|s| &s.spec)
    }

    /// Services of an environment (live or deleted).
    pub fn environment(&self, env: &str) -> Vec<String> {
        self.services
            .values()
            .filter(|s| s.spec.env == env)
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// Zones of a service's region.
    pub fn zones_of_service(&self, service: &str) -> Vec<String> {
        self.services
            .get(service)
            .map(|s| self.zones_of(&s.spec.region))
            .unwrap_or_default()
    }

    /// Whether `version` is one the service ran before (a rollback).
    pub fn ran_before(&self, service: &str, version: &str) -> bool {
        self.services
            .get(service)
            .is_some_and(|s| s.past_versions.iter().any(|v| v == version))
    }

    /// Adds a service that does not exist yet (a `create` with a spec); it starts cold.
    pub fn add_service(&mut self, spec: ServiceSpec) -> Result<(), SimError> {
        let mut all = self.spec.clone();
        // Services added before are not in the declared spec but are part of the world.
        let added: Vec<ServiceSpec> = self
            .services
            .values()
            .filter(|s| !self.spec.services.iter().any(|d| d.name == s.spec.name))
            .map(|s| s.spec.clone())
            .collect();
        all.services.extend(added);
        all.services.retain(|s| s.name != spec.name);
        all.services.push(spec.clone());
        let problems = all.problems();
        if !problems.is_empty() {
            return Err(SimError::Invalid(problems));
        }
        self.order = topo_order(&all.services)
            .ok_or_else(|| SimError::Invalid(vec!["dependency cycle".into()]))?;
        let svc = Service {
            pos: 0,
            shown: Shown::of(&spec),
            desired: Arc::default(),
            exists: false,
            version: spec.version.as_str().into(),
            zones: BTreeMap::new(),
            generation: 0,
            past_versions: vec![],
            first_tick: 1,
            hourly: VecDeque::new(),
            spec,
        };
        let old = self.take_live();
        self.services.entry(svc.spec.name.clone()).or_insert(svc);
        self.reslot(old);
        Ok(())
    }

    /// Moves a service to a desired state, as a real platform would: removed replicas stop
    /// at once, added or recreated replicas start cold, a version change rolls out at once,
    /// a new generation restarts every replica.
    pub fn set_desired(&mut self, service: &str, d: &Desired) -> Result<(), SimError> {
        self.change_desired(service, d)?;
        self.resync(service);
        Ok(())
    }

    fn change_desired(&mut self, service: &str, d: &Desired) -> Result<(), SimError> {
        let now = self.now;
        let zones = self.zones_of_service(service);
        let s = self
            .services
            .get_mut(service)
            .ok_or_else(|| SimError::UnknownService(service.into()))?;
        let live = &mut self.live[s.pos];
        let cold = s.spec.cold_start.ms();
        if !d.exists {
            s.exists = false;
            s.zones.clear();
            return Ok(());
        }
        if !s.exists {
            s.exists = true;
            s.zones.clear();
            live.version_since = now;
        }
        if *s.version != *d.version {
            live.version_since = now;
            let old = std::mem::replace(&mut s.version, d.version.as_str().into());
            s.past_versions.retain(|v| **v != *old);
            s.past_versions.push(old.to_string());
            if s.past_versions.len() > 10 {
                s.past_versions.remove(0);
            }
        }
        if d.generation != s.generation {
            s.generation = d.generation;
            for z in s.zones.values_mut() {
                let n = z.total();
                z.ready = 0;
                z.starting = vec![now + cold; n as usize];
            }
        }
        for zname in zones {
            let want = d.replicas.get(&zname).copied().unwrap_or(0);
            let z = s.zones.entry(zname).or_default();
            while z.total() > want {
                if z.starting.pop().is_none() {
                    z.ready -= 1;
                }
            }
            while z.total() < want {
                z.starting.push(now + cold);
            }
        }
        Ok(())
    }

    /// Puts a service in a saved desired state with its replicas already serving (a world
    /// loaded from a saved state, not a change).
    pub fn restore_desired(&mut self, service: &str, d: &Desired) -> Result<(), SimError> {
        let s = self
            .services
            .get_mut(service)
            .ok_or_else(|| SimError::UnknownService(service.into()))?;
        s.exists = d.exists;
        if *s.version != *d.version {
            self.live[s.pos].version_since = self.now;
            s.version = d.version.as_str().into();
        }
        s.generation = d.generation;
        s.zones = if d.exists {
            d.replicas
                .iter()
                .map(|(z, n)| {
                    (
                        z.clone(),
                        Zone {
                            ready: *n,
                            starting: vec![],
                        },
                    )
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        self.resync(service);
        Ok(())
    }

    /// Spreads `total` replicas over a service's zones.
    pub fn spread(&self, service: &str, total: u32) -> BTreeMap<String, u32> {
        spread(total, &self.zones_of_service(service))
    }

    /// Request-weighted availability and demand of the critical services at the last tick.
    pub fn critical_summary(&self) -> (f64, f64) {
        let (mut demand, mut ok) = (0.0, 0.0);
        for (name, s) in &self.last {
            if self
                .services
                .get(name)
                .is_some_and(|x| x.spec.tier == Tier::Critical)
            {
                demand += s.demand_rps;
                ok += s.demand_rps * s.availability;
            }
        }
        (if demand > 0.0 { ok / demand } else { 1.0 }, demand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secs;
    use crate::spec::*;

    pub(crate) fn world() -> WorldSpec {
        crate::testing::world()
            .region("us-east", ["a", "b"])
            .service("db", |s| s.cold_start(60))
            .service("web", |s| {
                s.tier(Tier::Critical)
                    .cold_start(60)
                    .depends_on(["db"])
                    .rps(200.0)
            })
            .failing_version("bad", 0.2)
            .build()
    }

    #[test]
    fn healthy_world_serves_everything() {
        let mut sim = Sim::new(world(), 1, 0, 10).unwrap();
        sim.tick();
        let (a, d) = sim.critical_summary();
        assert_eq!(a, 1.0);
        assert!((d - 200.0).abs() < 1e-9);
    }

    #[test]
    fn overload_sheds_and_deleted_dependency_fails_dependents() {
        let mut sim = Sim::new(world(), 1, 0, 10).unwrap();
        let mut d = sim.desired("web").unwrap();
        d.replicas = sim.spread("web", 1);
        sim.set_desired("web", &d).unwrap();
        sim.tick();
        let web = sim.truth()["web"];
        assert!((web.availability - 0.5).abs() < 1e-9, "{web:?}");
        assert_eq!(web.p99_ms, TIMEOUT_MS);
        let mut db = sim.desired("db").unwrap();
        db.exists = false;
        sim.set_desired("db", &db).unwrap();
        sim.tick();
        assert_eq!(sim.truth()["web"].availability, 0.0);
    }

    #[test]
    fn recreated_services_start_cold() {
        let mut sim = Sim::new(world(), 1, 0, 10).unwrap();
        let before = sim.desired("db").unwrap();
        let gone = Desired {
            exists: false,
            ..before.clone()
        };
        sim.set_desired("db", &gone).unwrap();
        sim.tick();
        sim.set_desired("db", &before).unwrap();
        for _ in 0..5 {
            sim.tick();
            assert_eq!(sim.truth()["db"].capacity_rps, 0.0);
        }
        for _ in 0..2 {
            sim.tick();
        }
        assert_eq!(sim.truth()["db"].capacity_rps, 400.0);
    }

    #[test]
    fn faults_and_blackouts() {
        let mut w = world();
        w.faults = vec![
            FaultSpec {
                kind: FaultKind::AzOutage,
                target: "a".into(),
                at: Secs(0),
                duration: Secs(30),
                count: None,
                factor: None,
            },
            FaultSpec {
                kind: FaultKind::MetricBlackout,
                target: "web".into(),
                at: Secs(0),
                duration: Secs(30),
                count: None,
                factor: None,
            },
        ];
        let mut sim = Sim::new(w, 1, 0, 10).unwrap();
        sim.tick();
        assert_eq!(sim.truth()["web"].capacity_rps, 200.0);
        assert!(sim.counters("web").is_none());
        assert!(sim.observe().service("web").unwrap().signals.is_none());
        for _ in 0..3 {
            sim.tick();
        }
        assert_eq!(sim.truth()["web"].capacity_rps, 400.0);
        assert!(sim.counters("web").is_some());
    }

    /// Deploys `version` to `service` (same replicas and generation).
    fn deploy(sim: &mut Sim, service: &str, version: &str) {
        let mut d = sim.desired(service).unwrap();
        d.version = version.into();
        sim.set_desired(service, &d).unwrap();
    }

    #[test]
    fn delayed_regression_starts_after_its_onset() {
        let mut w = world();
        w.versions.push(VersionSpec {
            name: "leaky".into(),
            error_rate: 0.2,
            latency_factor: 2.0,
            onset: Secs(60),
        });
        let mut sim = Sim::new(w, 1, 0, 10).unwrap();
        sim.tick();
        deploy(&mut sim, "web", "leaky");
        // Set at t=10 s; errors from t=70 s on, i.e. on the 6th tick after the deploy.
        for _ in 0..5 {
            sim.tick();
            let web = sim.truth()["web"];
            assert_eq!(web.availability, 1.0, "{web:?}");
            assert_eq!(
                web.p99_ms,
                30.0 * (1.0 + 2.0 * 0.5f64.powi(6)) + 30.0 * (1.0 + 2.0 * 0.25f64.powi(6))
            );
        }
        sim.tick();
        let web = sim.truth()["web"];
        assert!((web.availability - 0.8).abs() < 1e-9, "{web:?}");
        assert!(web.p99_ms > 90.0, "{web:?}");
        // A revert to the old version clears it, and going back to `leaky` waits again.
        deploy(&mut sim, "web", "v1");
        sim.tick();
        assert_eq!(sim.truth()["web"].availability, 1.0);
        deploy(&mut sim, "web", "leaky");
        sim.tick();
        assert_eq!(sim.truth()["web"].availability, 1.0);
    }

    #[test]
    fn version_at_start_counts_from_start_and_zero_onset_is_immediate() {
        let mut w = world();
        w.versions.push(VersionSpec {
            name: "leaky".into(),
            error_rate: 0.5,
            latency_factor: 1.0,
            onset: Secs(30),
        });
        w.services[0].version = "leaky".into();
        let mut sim = Sim::new(w, 1, 0, 10).unwrap();
        sim.tick();
        sim.tick();
        assert_eq!(sim.truth()["db"].availability, 1.0);
        sim.tick();
        assert!((sim.truth()["db"].availability - 0.5).abs() < 1e-9);
        // `bad` has the default onset of 0: errors on the first tick after the deploy.
        deploy(&mut sim, "web", "bad");
        sim.tick();
        let web = sim.truth()["web"];
        assert!((web.availability - 0.8 * 0.5).abs() < 1e-9, "{web:?}");
    }

    /// Regression: each `add_service` recomputed the order from the declared spec only, so
    /// a second added service dropped the first out of the world (and could not depend on it).
    #[test]
    fn services_added_one_after_another_all_tick() {
        let mut sim = Sim::new(world(), 1, 0, 10).unwrap();
        let mut cache = world().services[0].clone();
        cache.name = "cache".into();
        let mut api = world().services[1].clone();
        api.name = "api".into();
        api.depends_on = vec!["cache".into()];
        sim.add_service(cache).unwrap();
        sim.add_service(api).unwrap();
        for name in ["cache", "api"] {
            let mut d = sim.desired(name).unwrap();
            d.exists = true;
            d.replicas = sim.spread(name, 4);
            sim.set_desired(name, &d).unwrap();
        }
        for _ in 0..7 {
            sim.tick();
        }
        let t = sim.truth();
        assert_eq!(t.len(), 4);
        assert_eq!(
            (t["cache"].capacity_rps, t["api"].capacity_rps),
            (400.0, 400.0)
        );
        assert_eq!(t["api"].availability, 1.0);
        assert_eq!(sim.history("cache").len(), 7);
        assert_eq!(sim.dependents("cache"), vec!["api".to_string()]);
    }

    #[test]
    fn placement_puts_replicas_where_the_scenario_says() {
        let w = crate::testing::world()
            .region("r", ["a", "b", "c"])
            .service("web", |s| s.placement([("a", 4), ("c", 2)]))
            .build();
        let sim = Sim::new(w.clone(), 1, 0, 10).unwrap();
        let obs = sim.observe();
        let zones = &obs.service("web").unwrap().zones;
        assert_eq!(
            zones
                .iter()
                .map(|(z, n)| (z.as_str(), *n))
                .collect::<Vec<_>>(),
            vec![("a", 4), ("b", 0), ("c", 2)]
        );
        let mut bad = w;
        bad.services[0].placement = Some([("x".to_string(), 6)].into());
        let SimError::Invalid(p) = Sim::new(bad, 1, 0, 10).unwrap_err() else {
            panic!()
        };
        assert!(p[0].contains("zone `x` is not in region `r`"), "{p:?}");
    }

    /// A backend with no demand of its own stayed available at 0 replicas, so deleting or
    /// scaling it to zero never hurt its callers.
    #[test]
    fn a_pure_backend_without_capacity_fails_its_callers() {
        let w = crate::testing::world()
            .region("r", ["a"])
            .service("store", |s| s.rps(0.0))
            .service("web", |s| s.depends_on(["store"]).rps(100.0))
            .build();
        let mut sim = Sim::new(w, 1, 0, 10).unwrap();
        sim.tick();
        assert_eq!(sim.truth()["web"].availability, 1.0);
        let mut d = sim.desired("store").unwrap();
        d.replicas = sim.spread("store", 0);
        sim.set_desired("store", &d).unwrap();
        sim.tick();
        assert_eq!(sim.truth()["store"].availability, 0.0);
        assert_eq!(sim.truth()["web"].availability, 0.0);
    }

    #[test]
    fn a_blackout_hides_demand_from_the_planner_too() {
        let mut w = world();
        w.faults = vec![FaultSpec {
            kind: FaultKind::MetricBlackout,
            target: "web".into(),
            at: Secs(0),
            duration: Secs(3600),
            count: None,
            factor: None,
        }];
        let mut sim = Sim::new(w, 1, 0, 10).unwrap();
        for _ in 0..10 {
            sim.tick();
        }
        assert_eq!(sim.recent_p95_demand("web", 1800), None);
        assert_eq!(sim.expected_demand("web", 1800, 3 * 3600), None);
        assert!(sim.recent_p95_demand("db", 1800).is_some());
    }

    #[test]
    fn recent_p95_is_the_rank_of_the_sorted_window() {
        let w = crate::testing::world()
            .region("r", ["a"])
            .service("web", |s| s.rps(100.0).diurnal(0.5))
            .build();
        // Minute ticks: the windows below hold from 1 to 60 values of a moving curve.
        let mut sim = Sim::new(w, 3, 0, 60).unwrap();
        for i in 0..400 {
            sim.tick();
            if i % 37 != 0 {
                continue;
            }
            for window_s in [10, 60, 600, 1800, 3600] {
                let mut v: Vec<f64> = (sim.history("web").iter())
                    .filter(|h| h.t > sim.now() - window_s * 1000)
                    .map(|h| h.demand_rps)
                    .collect();
                v.sort_by(f64::total_cmp);
                let rank = (((v.len() as f64) * 0.95).ceil() as usize).saturating_sub(1);
                let want = v
                    .get(rank.min(v.len().saturating_sub(1)))
                    .map(|x| x.to_bits());
                let got = sim.recent_p95_demand("web", window_s).map(f64::to_bits);
                assert_eq!(
                    got,
                    want,
                    "tick {i}, window {window_s} s, {} values",
                    v.len()
                );
                // The recent sample reads the same window, in order.
                let recent: Vec<Signals> = (sim.history("web").into_iter())
                    .filter(|h| h.t > sim.now() - window_s * 1000)
                    .collect();
                let requests: f64 = recent.iter().map(|h| h.demand_rps * 60.0).sum();
                let sample = sim.recent_sample("web", window_s as u64);
                assert_eq!(
                    sample.and_then(|x| x.requests).map(f64::to_bits),
                    (!recent.is_empty()).then_some(requests.to_bits()),
                    "tick {i}, window {window_s} s"
                );
            }
        }
    }

    #[test]
    fn expected_demand_reads_the_same_hours_of_the_previous_days() {
        let w = crate::testing::world()
            .region("r", ["a"])
            .service("web", |s| s.rps(100.0).diurnal(0.5).peak_hour(15.0))
            .build();
        // Two days at 10-minute ticks, ending at 03:00 on the third day.
        let mut sim = Sim::new(w, 1, 0, 600).unwrap();
        for _ in 0..(2 * 24 * 6 + 3 * 6) {
            sim.tick();
        }
        let recent = sim.recent_p95_demand("web", 1800).unwrap();
        let ahead = sim.same_hours_peak("web", 5 * 3600).unwrap();
        // The trough is at 03:00 (50 rps); by 09:00 yesterday demand was back near 100.
        assert!(recent < 60.0, "{recent}");
        assert!(ahead > 90.0, "the next hours saw more yesterday: {ahead}");
        assert_eq!(sim.expected_demand("web", 1800, 5 * 3600), Some(ahead));
        // With an hour's horizon only, yesterday's 03:00–05:00 is what counts.
        assert!(sim.same_hours_peak("web", 3600).unwrap() < 60.0);
    }

    #[test]
    fn same_seed_same_world() {
        let mut w = world();
        w.services[1].demand.noise = 0.1;
        let run = |seed| {
            let mut sim = Sim::new(w.clone(), seed, 0, 10).unwrap();
            (0..100)
                .map(|_| {
                    sim.tick();
                    sim.truth()["web"].demand_rps
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn invalid_world_names_every_problem() {
        let mut w = world();
        w.services[1].depends_on.push("nope".into());
        w.services[0].region = "mars".into();
        let SimError::Invalid(p) = Sim::new(w, 1, 0, 10).unwrap_err() else {
            panic!()
        };
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|m| m.contains("unknown service `nope`")));
    }
}
