//! Worlds for tests and benches, built in a few lines instead of full spec literals
//! (behind the `testing` feature).
//!
//! The defaults are what test worlds share: a noise-free prod service with a flat demand,
//! so every number a test asserts follows from the few values it sets.
//!
//! ```
//! use airlock_sim::Tier;
//! use airlock_sim::testing::world;
//!
//! let spec = world()
//!     .region("us-east", ["a", "b"])
//!     .service("db", |s| s)
//!     .service("web", |s| s.tier(Tier::Critical).depends_on(["db"]).rps(200.0))
//!     .failing_version("bad", 0.2)
//!     .build();
//! assert!(spec.problems().is_empty());
//! assert_eq!(spec.services[1].region, "us-east");
//! ```

use crate::Secs;
use crate::spec::{DemandSpec, FaultSpec, RegionSpec, ServiceSpec, Tier, VersionSpec, WorldSpec};

/// The region a service built on its own is in, unless it names one.
pub const DEFAULT_REGION: &str = "us-east";

/// A world with no regions, services, versions, events or faults yet.
pub fn world() -> WorldBuilder {
    WorldBuilder::default()
}

/// A service named `name` with the test defaults: env `prod`, tier `standard`, 4 replicas
/// of 100 rps each, a 30 s cold start, version `v1`, 30 ms base latency, no dependencies or
/// tags, and a flat, noise-free demand of 100 rps (daily peak at 14:00, amplitude 0).
///
/// Its region is the world's first region when added with [`WorldBuilder::service`], and
/// [`DEFAULT_REGION`] when built on its own, unless [`ServiceBuilder::region`] names one.
pub fn service(name: &str) -> ServiceBuilder {
    ServiceBuilder {
        spec: ServiceSpec {
            name: name.into(),
            env: "prod".into(),
            region: String::new(),
            tier: Tier::Standard,
            replicas: 4,
            placement: None,
            capacity_rps: 100.0,
            cold_start: Secs(30),
            version: "v1".into(),
            depends_on: vec![],
            base_latency_ms: 30.0,
            tags: vec![],
            demand: DemandSpec {
                base_rps: 100.0,
                diurnal_amplitude: 0.0,
                peak_hour: 14.0,
                noise: 0.0,
            },
        },
        region: None,
    }
}

/// A version that fails `error_rate` of requests, at once and no slower.
pub fn failing_version(name: &str, error_rate: f64) -> VersionSpec {
    VersionSpec {
        name: name.into(),
        error_rate,
        latency_factor: 1.0,
        onset: Secs(0),
    }
}

/// Builds a [`WorldSpec`]; see [`world`].
#[derive(Debug, Clone, Default)]
pub struct WorldBuilder {
    spec: WorldSpec,
    /// Services whose region is the world's first one, by index into `spec.services`.
    in_first_region: Vec<usize>,
}

impl WorldBuilder {
    /// Adds a region with its availability zones.
    pub fn region<Z: AsRef<str>>(mut self, name: &str, azs: impl IntoIterator<Item = Z>) -> Self {
        self.spec.regions.push(RegionSpec {
            name: name.into(),
            azs: strings(azs),
        });
        self
    }

    /// Adds the service `name`: the [`service`] defaults, changed by `edit`.
    pub fn service(
        mut self,
        name: &str,
        edit: impl FnOnce(ServiceBuilder) -> ServiceBuilder,
    ) -> Self {
        let built = edit(service(name));
        if built.region.is_none() {
            self.in_first_region.push(self.spec.services.len());
        }
        self.spec.services.push(built.build());
        self
    }

    /// Adds services built elsewhere, as they are.
    pub fn services(mut self, services: impl IntoIterator<Item = ServiceSpec>) -> Self {
        self.spec.services.extend(services);
        self
    }

    /// Adds a version that fails `error_rate` of requests (see [`failing_version`]).
    pub fn failing_version(mut self, name: &str, error_rate: f64) -> Self {
        self.spec.versions.push(failing_version(name, error_rate));
        self
    }

    /// Adds injected faults.
    pub fn faults(mut self, faults: impl IntoIterator<Item = FaultSpec>) -> Self {
        self.spec.faults.extend(faults);
        self
    }

    /// The world. It is not checked: call [`WorldSpec::problems`] or build a `Sim` for that.
    pub fn build(mut self) -> WorldSpec {
        if let Some(first) = self.spec.regions.first().map(|r| r.name.clone()) {
            for &i in &self.in_first_region {
                self.spec.services[i].region = first.clone();
            }
        }
        self.spec
    }
}

/// Builds a [`ServiceSpec`]; see [`service`] for the defaults.
#[derive(Debug, Clone)]
pub struct ServiceBuilder {
    spec: ServiceSpec,
    /// The region named explicitly, if any.
    region: Option<String>,
}

impl ServiceBuilder {
    /// The environment, e.g. `staging`.
    pub fn env(mut self, env: &str) -> Self {
        self.spec.env = env.into();
        self
    }
    /// The region.
    pub fn region(mut self, region: &str) -> Self {
        self.region = Some(region.into());
        self
    }
    /// Whether the service counts in availability.
    pub fn tier(mut self, tier: Tier) -> Self {
        self.spec.tier = tier;
        self
    }
    /// How many replicas run at start.
    pub fn replicas(mut self, replicas: u32) -> Self {
        self.spec.replicas = replicas;
        self
    }
    /// Replicas per zone at the start (sets `replicas` to their sum).
    pub fn placement<'a>(mut self, zones: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let place: std::collections::BTreeMap<String, u32> =
            zones.into_iter().map(|(z, n)| (z.to_string(), n)).collect();
        self.spec.replicas = place.values().sum();
        self.spec.placement = Some(place);
        self
    }
    /// What one replica serves.
    pub fn capacity_rps(mut self, rps: f64) -> Self {
        self.spec.capacity_rps = rps;
        self
    }
    /// How long a new replica takes to serve, in seconds.
    pub fn cold_start(mut self, secs: u64) -> Self {
        self.spec.cold_start = Secs(secs);
        self
    }
    /// The version running at start.
    pub fn version(mut self, version: &str) -> Self {
        self.spec.version = version.into();
        self
    }
    /// The services this one calls.
    pub fn depends_on<S: AsRef<str>>(mut self, services: impl IntoIterator<Item = S>) -> Self {
        self.spec.depends_on = strings(services);
        self
    }
    /// The latency of one request below saturation, in milliseconds.
    pub fn latency_ms(mut self, ms: f64) -> Self {
        self.spec.base_latency_ms = ms;
        self
    }
    /// Free-form tags.
    pub fn tags<S: AsRef<str>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.spec.tags = strings(tags);
        self
    }
    /// The (flat) demand, in requests per second.
    pub fn rps(mut self, rps: f64) -> Self {
        self.spec.demand.base_rps = rps;
        self
    }
    /// The daily swing of demand around its base, 0 to 0.95.
    pub fn diurnal(mut self, amplitude: f64) -> Self {
        self.spec.demand.diurnal_amplitude = amplitude;
        self
    }
    /// The hour of the daily peak (no effect on a flat demand, but part of the spec).
    pub fn peak_hour(mut self, hour: f64) -> Self {
        self.spec.demand.peak_hour = hour;
        self
    }
    /// The spec, in [`DEFAULT_REGION`] unless a region was named.
    pub fn build(mut self) -> ServiceSpec {
        self.spec.region = self.region.unwrap_or_else(|| DEFAULT_REGION.into());
        self.spec
    }
}

fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(|s| s.as_ref().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_land_in_the_first_region_unless_they_name_one() {
        let w = world()
            .service("early", |s| s)
            .region("east", ["a"])
            .region("west", ["w"])
            .service("db", |s| s)
            .service("far", |s| s.region("west"))
            .build();
        let regions: Vec<&str> = w.services.iter().map(|s| s.region.as_str()).collect();
        assert_eq!(regions, ["east", "east", "west"]);
        assert!(w.problems().is_empty(), "{:?}", w.problems());
        assert_eq!(service("lone").build().region, DEFAULT_REGION);
    }
}
