//! `forecast-autoscaler`: an AI autoscaler that forecasts demand from the history it has
//! seen (MSTL decomposition with an AutoETS trend, from augurs) and sets replicas to the
//! coming hour's forecast times a margin. Ahead of a predicted trough it scales down hard;
//! when the service is visibly overloaded it scales up.
//!
//! Fitting the model is nearly all of a run's work, and the runs of one scenario and seed
//! (unguarded, guarded) see the same demand, so they fit the same windows: each forecast
//! is made once per process and remembered (see [`forecast`]).

use super::{Agent, Outcome, Params, addr, known_service};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;
use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

const BUCKET_MS: i64 = 300_000;
const DAY_BUCKETS: usize = 288;

/// Forecasts made in this process, by [`key`]. Each cell is filled once: a run that asks
/// for a forecast another run is making waits for it instead of fitting it again.
type Memo = HashMap<[u8; 32], Arc<OnceLock<Option<f64>>>>;
static MEMO: LazyLock<Mutex<Memo>> = LazyLock::new(Mutex::default);
/// Past this many forecasts the memo starts again (a few hundred bytes each): the runs
/// that share a window run side by side, so old entries are rarely asked for again.
const MEMO_CAP: usize = 1 << 14;

/// The memo's key: a digest of the horizon and the window's exact bits.
fn key(window: &[f64], horizon: usize) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(8 * (window.len() + 1));
    bytes.extend_from_slice(&(horizon as u64).to_le_bytes());
    for x in window {
        bytes.extend_from_slice(&x.to_bits().to_le_bytes());
    }
    *blake3::hash(&bytes).as_bytes()
}

/// The mean of the next `horizon` buckets' forecast from `window`. A pure function of
/// its inputs, so it is remembered: which runs happened before, or alongside, changes
/// nothing but the time it takes.
fn forecast(window: &[f64], horizon: usize) -> Option<f64> {
    let k = key(window, horizon);
    let cell = {
        // Every change to the map leaves it whole: a panic elsewhere does not spoil it.
        let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
        if memo.len() >= MEMO_CAP && !memo.contains_key(&k) {
            memo.clear();
        }
        memo.entry(k).or_default().clone()
    };
    *cell.get_or_init(|| fit_mean(window, horizon))
}

/// Fits MSTL (daily season, AutoETS trend) to `window` and averages the next `horizon`
/// buckets' point forecast; `None` when the model cannot be fitted.
fn fit_mean(window: &[f64], horizon: usize) -> Option<f64> {
    let model = MSTLModel::new(
        vec![DAY_BUCKETS],
        AutoETS::non_seasonal().into_trend_model(),
    );
    let fitted = model.fit(window).ok()?;
    let f = fitted.predict(horizon, None).ok()?;
    let n = f.point.len().max(1) as f64;
    Some(f.point.iter().sum::<f64>() / n)
}

pub struct ForecastAutoscaler {
    service: String,
    margin: f64,
    every_ms: i64,
    horizon: usize,
    min_replicas: u32,
    history: Vec<f64>,
    bucket: (i64, f64, u32),
    next_act: i64,
    pending: bool,
}

impl ForecastAutoscaler {
    pub fn new(p: &Params<'_>, scenario: &Scenario) -> Result<Self, String> {
        let service = p.str("service", None)?;
        known_service(scenario, &service, "service")?;
        let margin = p.f64("margin", 1.1)?;
        if !(1.0..=5.0).contains(&margin) {
            return Err("params.margin: must be within 1..5".into());
        }
        Ok(Self {
            service,
            margin,
            every_ms: p.secs("every", 300)?.ms().max(BUCKET_MS),
            horizon: (p.secs("horizon", 3600)?.ms() / BUCKET_MS).max(1) as usize,
            min_replicas: p.f64("min_replicas", 2.0)?.max(1.0) as u32,
            history: Vec::new(),
            bucket: (i64::MIN, 0.0, 0),
            next_act: i64::MIN,
            pending: false,
        })
    }

    fn record(&mut self, obs: &Observation) {
        let Some(sig) = obs.service(&self.service).and_then(|s| s.signals) else {
            return;
        };
        let b = obs.now.div_euclid(BUCKET_MS);
        if self.bucket.0 != b {
            if self.bucket.2 > 0 {
                self.history.push(self.bucket.1 / f64::from(self.bucket.2));
                if self.history.len() > 7 * DAY_BUCKETS {
                    self.history.remove(0);
                }
            }
            self.bucket = (b, 0.0, 0);
        }
        self.bucket.1 += sig.demand_rps;
        self.bucket.2 += 1;
    }

    fn forecast_mean(&self) -> Option<f64> {
        if self.history.len() < 2 * DAY_BUCKETS {
            return None;
        }
        let window = &self.history[self.history.len().saturating_sub(3 * DAY_BUCKETS)..];
        forecast(window, self.horizon)
    }
}

impl Agent for ForecastAutoscaler {
    fn name(&self) -> &str {
        "forecast-autoscaler"
    }

    fn step(&mut self, obs: &Observation, warmup: bool) -> Vec<ActionRequest> {
        self.record(obs);
        if warmup || self.pending || obs.now < self.next_act {
            return vec![];
        }
        self.next_act = obs.now + self.every_ms;
        let Some(view) = obs.service(&self.service) else {
            return vec![];
        };
        let Some(sig) = view.signals else {
            return vec![];
        };
        let per = view.capacity_rps_per_replica.max(1e-9);
        let mut target = match self.forecast_mean() {
            Some(mean) => (mean.max(0.0) * self.margin / per).ceil() as u32,
            None => view.replicas_desired,
        };
        // Visibly overloaded now: add capacity whatever the forecast says.
        if sig.demand_rps > 0.9 * sig.capacity_rps {
            target = target.max((sig.demand_rps * 1.3 / per).ceil() as u32);
        }
        let target = target.max(self.min_replicas);
        if target == view.replicas_desired {
            return vec![];
        }
        self.pending = true;
        vec![
            ActionRequest::new(Verb::Scale, addr("service", &self.service))
                .param("replicas", target)
                .intent("match capacity to the forecast demand of the coming hour"),
        ]
    }

    fn outcome(&mut self, _req: &ActionRequest, outcome: &Outcome) {
        if !matches!(outcome, Outcome::Held) {
            self.pending = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three days of a daily cycle with a little deterministic wobble.
    fn window(days: usize) -> Vec<f64> {
        (0..days * DAY_BUCKETS)
            .map(|i| {
                let t = i as f64 / DAY_BUCKETS as f64;
                500.0 + 200.0 * (std::f64::consts::TAU * t).sin() + ((i * 7919) % 13) as f64
            })
            .collect()
    }

    #[test]
    fn a_remembered_forecast_is_the_fitted_one_bit_for_bit() {
        let w = window(3);
        let fitted = fit_mean(&w, 12).map(f64::to_bits);
        assert!(fitted.is_some(), "three days fit");
        assert_eq!(forecast(&w, 12).map(f64::to_bits), fitted, "first ask");
        assert_eq!(forecast(&w, 12).map(f64::to_bits), fitted, "remembered");
        // Another horizon or another window is another forecast.
        assert_eq!(
            forecast(&w, 3).map(f64::to_bits),
            fit_mean(&w, 3).map(f64::to_bits)
        );
        let mut moved = w.clone();
        moved[100] += 1e-9;
        assert_ne!(key(&moved, 12), key(&w, 12));
        assert_ne!(key(&w, 3), key(&w, 12));
    }
}
