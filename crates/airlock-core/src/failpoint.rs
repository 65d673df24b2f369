//! Named places where a fault can be injected on purpose: a failed write, a provider that
//! errors, a process that dies between two steps. Chaos and recovery tests use them to
//! prove that every fault ends in a deny, `needs_attention`, missing data or a retry, and
//! never in a change the journal does not know.
//!
//! Every point is off unless configured, and an unconfigured point costs one atomic load.
//! A process reads its configuration once, from `AIRLOCK_FAILPOINTS` (`airlock serve` does
//! this at start), as `name=action` pairs separated by `;`:
//!
//! - `error`: the point reports a failure (what that means is the caller's: an I/O error,
//!   a provider that is unavailable);
//! - `crash`: the process aborts at once, as if killed with `SIGKILL` (no destructor, no
//!   flush, no answer);
//! - `N@action`: only the N-th time the point is reached (from 1);
//! - `P%action`: each time with probability P (0–100), from a generator seeded by
//!   `AIRLOCK_FAILPOINTS_SEED` (0 by default), so a run is reproducible.
//!
//! Example: `AIRLOCK_FAILPOINTS="gate.after_apply=3@crash;sim.save=25%error"`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What a configured point does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Report a failure to the caller.
    Error,
    /// Abort the process.
    Crash,
}

#[derive(Debug, Clone, PartialEq)]
enum When {
    Always,
    Nth(u64),
    Chance(f64),
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    fault: Fault,
    when: When,
    hits: u64,
}

struct Points {
    rules: BTreeMap<String, Rule>,
    rng: u64,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static POINTS: Mutex<Points> = Mutex::new(Points {
    rules: BTreeMap::new(),
    rng: 0x9e37_79b9_7f4a_7c15,
});

fn points() -> MutexGuard<'static, Points> {
    POINTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The environment variable a process reads its failpoints from.
pub const ENV: &str = "AIRLOCK_FAILPOINTS";
/// The environment variable that seeds probabilistic failpoints.
pub const SEED_ENV: &str = "AIRLOCK_FAILPOINTS_SEED";

fn parse_action(spec: &str) -> Result<(Fault, When), String> {
    let spec = spec.trim();
    let (when, action) = if let Some((n, rest)) = spec.split_once('@') {
        let n: u64 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{n}@` needs a count from 1"))?;
        (When::Nth(n), rest)
    } else if let Some((p, rest)) = spec.split_once('%') {
        let p: f64 = p
            .trim()
            .parse()
            .ok()
            .filter(|p: &f64| (0.0..=100.0).contains(p))
            .ok_or_else(|| format!("`{p}%` needs a percentage from 0 to 100"))?;
        (When::Chance(p / 100.0), rest)
    } else {
        (When::Always, spec)
    };
    let fault = match action.trim() {
        "error" => Fault::Error,
        "crash" => Fault::Crash,
        other => {
            return Err(format!(
                "unknown failpoint action `{other}`: error or crash"
            ));
        }
    };
    Ok((fault, when))
}

/// Configures one point (`spec` as in the module's documentation), or turns it off with
/// `off`.
pub fn set(name: &str, spec: &str) -> Result<(), String> {
    let mut p = points();
    if spec.trim() == "off" {
        p.rules.remove(name);
    } else {
        let (fault, when) = parse_action(spec).map_err(|e| format!("failpoint `{name}`: {e}"))?;
        p.rules.insert(
            name.to_string(),
            Rule {
                fault,
                when,
                hits: 0,
            },
        );
    }
    ENABLED.store(!p.rules.is_empty(), Ordering::SeqCst);
    Ok(())
}

/// Turns every point off.
pub fn clear() {
    let mut p = points();
    p.rules.clear();
    ENABLED.store(false, Ordering::SeqCst);
}

/// Configures points from a `name=action;…` list; nothing changes if any entry is invalid.
pub fn configure(list: &str, seed: u64) -> Result<usize, String> {
    let mut parsed = Vec::new();
    for entry in list.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, spec) = entry
            .split_once('=')
            .ok_or_else(|| format!("failpoint `{entry}` is not `name=action`"))?;
        let (fault, when) =
            parse_action(spec).map_err(|e| format!("failpoint `{}`: {e}", name.trim()))?;
        parsed.push((name.trim().to_string(), fault, when));
    }
    let mut p = points();
    p.rng = seed ^ 0x9e37_79b9_7f4a_7c15;
    let n = parsed.len();
    for (name, fault, when) in parsed {
        p.rules.insert(
            name,
            Rule {
                fault,
                when,
                hits: 0,
            },
        );
    }
    ENABLED.store(!p.rules.is_empty(), Ordering::SeqCst);
    Ok(n)
}

/// Reads `AIRLOCK_FAILPOINTS` (and its seed) once at process start; returns how many
/// points were configured (0 when the variable is not set).
pub fn from_env() -> Result<usize, String> {
    let Ok(list) = std::env::var(ENV) else {
        return Ok(0);
    };
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{SEED_ENV} must be a whole number, got `{s}`"))?,
        Err(_) => 0,
    };
    configure(&list, seed)
}

/// Reaches the point `name` in a provider call: `Some` (an unavailable provider) when
/// it must fail there.
pub fn provider_fault(name: &str) -> Option<crate::provider::ProviderError> {
    hit(name)
        .map(|_| crate::provider::ProviderError::Unavailable(format!("failpoint `{name}` fired")))
}

/// Reaches the point `name`: `None` to go on, `Some(Fault::Error)` when the caller must
/// fail here. A `crash` aborts the process and never returns.
pub fn hit(name: &str) -> Option<Fault> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let fault = {
        let mut p = points();
        let mut draw = || {
            // xorshift64*: small, seeded, reproducible.
            let mut x = p.rng;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            p.rng = x;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        };
        let chance = draw();
        let rule = p.rules.get_mut(name)?;
        rule.hits += 1;
        let fires = match rule.when {
            When::Always => true,
            When::Nth(n) => rule.hits == n,
            When::Chance(c) => chance < c,
        };
        fires.then_some(rule.fault)?
    };
    if fault == Fault::Crash {
        eprintln!("failpoint `{name}`: crashing on purpose");
        std::process::abort();
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_action("error").unwrap(), (Fault::Error, When::Always));
        assert_eq!(
            parse_action("3@crash").unwrap(),
            (Fault::Crash, When::Nth(3))
        );
        assert_eq!(
            parse_action("25%error").unwrap(),
            (Fault::Error, When::Chance(0.25))
        );
        for bad in ["explode", "0@error", "x@error", "150%error", "-1%crash"] {
            assert!(parse_action(bad).is_err(), "{bad} should be refused");
        }
        assert!(configure("a=error;b", 0).is_err());
    }

    #[test]
    fn a_point_fires_as_configured_and_only_its_own_name() {
        // One test touches the global table, so these cases do not race each other.
        clear();
        assert_eq!(hit("test.point"), None);
        set("test.point", "2@error").unwrap();
        assert_eq!(hit("test.other"), None);
        assert_eq!(hit("test.point"), None);
        assert_eq!(hit("test.point"), Some(Fault::Error));
        assert_eq!(hit("test.point"), None);
        set("test.point", "error").unwrap();
        assert_eq!(hit("test.point"), Some(Fault::Error));
        set("test.point", "0%error").unwrap();
        assert!((0..100).all(|_| hit("test.point").is_none()));
        set("test.point", "off").unwrap();
        assert_eq!(hit("test.point"), None);
        assert!(!ENABLED.load(Ordering::SeqCst));
        clear();
    }
}
