//! The world as a scenario file declares it: regions, services, versions, workload
//! events and faults. Every struct rejects unknown fields.

use airlock_core::Secs;
use serde::{Deserialize, Serialize};

/// A region and its availability zones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    pub name: String,
    pub azs: Vec<String>,
}

/// Whether a service is critical (counted in availability) or not.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Critical,
    #[default]
    Standard,
}

impl Tier {
    /// `critical` or `standard`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
        }
    }
}

/// A demand curve: a daily cosine around `base_rps` peaking at `peak_hour`, with noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandSpec {
    pub base_rps: f64,
    /// Swing of the daily curve, 0 to 0.95 of the base.
    #[serde(default)]
    pub diurnal_amplitude: f64,
    /// Hour of day (UTC) of the daily peak.
    #[serde(default = "default_peak_hour")]
    pub peak_hour: f64,
    /// Standard deviation of multiplicative noise per tick.
    #[serde(default)]
    pub noise: f64,
}

fn default_peak_hour() -> f64 {
    14.0
}

/// A service: replicas spread over its region's zones, each serving `capacity_rps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    pub env: String,
    pub region: String,
    #[serde(default)]
    pub tier: Tier,
    pub replicas: u32,
    /// Replicas per zone at the start (zone → count, summing to `replicas`); by default
    /// they are spread evenly over the region's zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<std::collections::BTreeMap<String, u32>>,
    pub capacity_rps: f64,
    #[serde(default = "default_cold_start")]
    pub cold_start: Secs,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default = "default_latency")]
    pub base_latency_ms: f64,
    #[serde(default)]
    pub tags: Vec<String>,
    pub demand: DemandSpec,
}

fn default_cold_start() -> Secs {
    Secs(120)
}
fn default_version() -> String {
    "v1".into()
}
fn default_latency() -> f64 {
    40.0
}

/// How a config version behaves; versions not listed behave well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    pub name: String,
    /// Share of requests that fail on this version, 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
    /// How many times slower this version serves each request.
    #[serde(default = "one")]
    pub latency_factor: f64,
    /// How long a service must run this version before `error_rate` and `latency_factor`
    /// take effect (a delayed regression); counted from when the version was set on the
    /// service (at start, by a deploy or a revert, or when the service is recreated).
    /// 0, the default, means at once.
    #[serde(default)]
    pub onset: Secs,
}

fn one() -> f64 {
    1.0
}

/// A workload event: demand of the selected services multiplied by `factor` from `at`,
/// for `duration` (a flash crowd) or for good (a step shift, no duration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Service names, or `["*"]` for all.
    pub services: Vec<String>,
    pub at: Secs,
    #[serde(default)]
    pub duration: Option<Secs>,
    pub factor: f64,
    /// Seconds over which demand ramps to the new level.
    #[serde(default)]
    pub ramp: Secs,
}

/// Kinds of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Every replica in a zone stops serving.
    AzOutage,
    /// `count` replicas of a service crash and come back cold when the fault ends.
    ReplicaCrash,
    /// A service gets `factor` times slower, and so does everything that calls it.
    DependencySlowdown,
    /// A service's signals go missing (not zero) while it keeps serving.
    MetricBlackout,
}

/// An injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// A zone for `az_outage`; a service (or `*`) otherwise.
    pub target: String,
    pub at: Secs,
    pub duration: Secs,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub factor: Option<f64>,
}

/// Everything that defines a world, apart from the seed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    #[serde(default, rename = "region")]
    pub regions: Vec<RegionSpec>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSpec>,
    #[serde(default, rename = "version")]
    pub versions: Vec<VersionSpec>,
    #[serde(default, rename = "event")]
    pub events: Vec<EventSpec>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
}

impl WorldSpec {
    /// Every problem with the spec, each naming its field; empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        let zones: Vec<&str> = self
            .regions
            .iter()
            .flat_map(|r| r.azs.iter().map(String::as_str))
            .collect();
        if self.regions.is_empty() {
            out.push("region: at least one region is needed".to_string());
        }
        for r in &self.regions {
            if r.azs.is_empty() {
                out.push(format!(
                    "region `{}`: azs: at least one zone is needed",
                    r.name
                ));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            let at = format!("service[{i}] `{}`", s.name);
            if !names.insert(s.name.as_str()) {
                out.push(format!("{at}: name: duplicate service name"));
            }
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                out.push(format!(
                    "{at}: name: use lower-case letters, digits and `-`"
                ));
            }
            if !self.regions.iter().any(|r| r.name == s.region) {
                out.push(format!("{at}: region: unknown region `{}`", s.region));
            }
            if let Some(place) = &s.placement {
                let azs: Vec<&String> = self
                    .regions
                    .iter()
                    .filter(|r| r.name == s.region)
                    .flat_map(|r| r.azs.iter())
                    .collect();
                for z in place.keys() {
                    if !azs.contains(&z) {
                        out.push(format!(
                            "{at}: placement: zone `{z}` is not in region `{}`",
                            s.region
                        ));
                    }
                }
                if place.values().sum::<u32>() != s.replicas {
                    out.push(format!(
                        "{at}: placement: the zones hold {} replicas, `replicas` says {}",
                        place.values().sum::<u32>(),
                        s.replicas
                    ));
                }
            }
            if s.capacity_rps.is_nan() || s.capacity_rps <= 0.0 {
                out.push(format!("{at}: capacity_rps: must be above 0"));
            }
            if s.demand.base_rps < 0.0 || !(0.0..=0.95).contains(&s.demand.diurnal_amplitude) {
                out.push(format!(
                    "{at}: demand: base_rps must be >= 0 and diurnal_amplitude within 0..0.95"
                ));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            for d in &s.depends_on {
                if !names.contains(d.as_str()) {
                    out.push(format!(
                        "service[{i}] `{}`: depends_on: unknown service `{d}`",
                        s.name
                    ));
                }
            }
        }
        if out.is_empty() && crate::world::topo_order(&self.services).is_none() {
            out.push("service: depends_on: the dependencies form a cycle".to_string());
        }
        for (i, e) in self.events.iter().enumerate() {
            for s in &e.services {
                if s != "*" && !names.contains(s.as_str()) {
                    out.push(format!("event[{i}]: services: unknown service `{s}`"));
                }
            }
            if e.factor.is_nan() || e.factor < 0.0 {
                out.push(format!("event[{i}]: factor: must be >= 0"));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            let known = match f.kind {
                FaultKind::AzOutage => zones.contains(&f.target.as_str()),
                _ => f.target == "*" || names.contains(f.target.as_str()),
            };
            if !known {
                let what = if f.kind == FaultKind::AzOutage {
                    "zone"
                } else {
                    "service"
                };
                out.push(format!("fault[{i}]: target: unknown {what} `{}`", f.target));
            }
        }
        for (i, v) in self.versions.iter().enumerate() {
            if !(0.0..=1.0).contains(&v.error_rate) {
                out.push(format!(
                    "version[{i}] `{}`: error_rate: must be within 0..1",
                    v.name
                ));
            }
        }
        out
    }
}
