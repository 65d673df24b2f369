//! `forecast-autoscaler`: an AI autoscaler that forecasts demand from the history it has
//! seen (MSTL decomposition with an AutoETS trend, from augurs) and sets replicas to the
//! coming hour's forecast times a margin. Ahead of a predicted trough it scales down hard;
//! when the service is visibly overloaded it scales up.

use super::{Agent, Outcome, Params, addr, known_service};
use crate::scenario::Scenario;
use airlock_core::{ActionRequest, Verb};
use airlock_sim::Observation;
use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::prelude::*;

const BUCKET_MS: i64 = 300_000;
const DAY_BUCKETS: usize = 288;

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
        let model = MSTLModel::new(
            vec![DAY_BUCKETS],
            AutoETS::non_seasonal().into_trend_model(),
        );
        let fitted = model.fit(window).ok()?;
        let f = fitted.predict(self.horizon, None).ok()?;
        let n = f.point.len().max(1) as f64;
        Some(f.point.iter().sum::<f64>() / n)
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
