//! The changepoint detector the behaviour model runs on an agent's mutations per minute
//! (Bayesian online changepoint detection, a normal-gamma model with a hazard of 1/250,
//! the detector augurs calls `NormalGammaDetector`), remembering its work between calls.
//!
//! The detector reads the series from its first point on, so two series that start alike
//! share the detector's state over their common start. The minutes of an agent's window
//! rarely all change between two of its mutations (most are zero before a burst, and only
//! the minutes an action crosses move), so a call steps only from where the series
//! changed, from the nearest state saved before it. The answer is the one a fresh detector
//! gives, bit for bit: the same steps run on the same inputs.

use changepoint::rv::dist::{Gaussian, NormalGamma};
use changepoint::{BocpdLike, BocpdTruncated};

type Bocpd = BocpdTruncated<f64, Gaussian, NormalGamma>;

/// Points between two saved detector states: memory (a state holds up to one run-length
/// probability per point) against the steps a changed series re-runs.
const EVERY: usize = 8;

fn fresh() -> Bocpd {
    BocpdTruncated::new(250.0, NormalGamma::new_unchecked(0.0, 1.0, 1.0, 1.0))
}

/// The first index of the largest value (values that do not compare, NaN, never win).
fn first_max(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in xs.iter().enumerate().skip(1) {
        if *x > xs[best] {
            best = i;
        }
    }
    best
}

/// One detector's memory: the last series it read, the most likely run length after each
/// of its points, and its state after every `EVERY` points.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateChange {
    series: Vec<f64>,
    likeliest: Vec<usize>,
    /// `saved[k]`: the detector after `k * EVERY` points.
    saved: Vec<Bocpd>,
}

impl RateChange {
    /// The changepoints of `y`: indices where a new run begins, in order, read back from
    /// the most likely run length at each point (the maximum a posteriori segmentation).
    pub(crate) fn detect(&mut self, y: &[f64]) -> Vec<usize> {
        let common = self
            .series
            .iter()
            .zip(y)
            .take_while(|(a, b)| a.to_bits() == b.to_bits())
            .count();
        self.saved.truncate(common / EVERY + 1);
        if self.saved.is_empty() {
            self.saved.push(fresh());
        }
        let start = (self.saved.len() - 1) * EVERY;
        let mut detector = self.saved[self.saved.len() - 1].clone();
        self.likeliest.truncate(start);
        self.series.clear();
        self.series.extend_from_slice(y);
        for (i, x) in y.iter().enumerate().skip(start) {
            self.likeliest.push(first_max(detector.step(x)));
            if (i + 1) % EVERY == 0 {
                self.saved.push(detector.clone());
            }
        }
        segments(&self.likeliest)
    }
}

/// Walks back from the last point: a most likely run length of `m` > 0 means the run began
/// `m` points earlier; 0 means a change at this very point.
fn segments(likeliest: &[usize]) -> Vec<usize> {
    let mut s = likeliest.len().saturating_sub(1);
    let mut out: Vec<usize> = Vec::new();
    while s != 0 {
        match likeliest[s] {
            0 => {
                if out.last().is_some_and(|last| *last != s) {
                    out.push(s);
                }
                s -= 1;
            }
            m => {
                s = s.saturating_sub(m);
                out.push(s);
            }
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use augurs::changepoint::{Detector, NormalGammaDetector};

    /// A small seeded generator (splitmix64), so the series are the same on every run.
    struct Draw(u64);

    impl Draw {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Uniform in 0..n.
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// Uniform in 0..1.
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn reference(y: &[f64]) -> Vec<usize> {
        NormalGammaDetector::default().detect_changepoints(y)
    }

    /// Series like an agent's minutes: quiet, then bursts of several sizes, with noise.
    fn series(rng: &mut Draw, n: usize) -> Vec<f64> {
        let mut rate = 0.0;
        (0..n)
            .map(|_| {
                if rng.unit() < 0.05 {
                    rate = [0.0, 1.0, 4.0, 30.0, 400.0][rng.below(5)];
                }
                (rate * (0.5 + rng.unit())).round()
            })
            .collect()
    }

    #[test]
    fn every_call_answers_as_a_fresh_detector() {
        let mut rng = Draw(7);
        let mut memo = RateChange::default();
        let mut y = series(&mut rng, 120);
        let mut changed_somewhere = 0;
        for round in 0..400 {
            // Like the window between two calls: some minutes move (late ones most often),
            // the length stays, now and then it is all new.
            match round % 7 {
                0 => y = series(&mut rng, 120),
                1 if !y.is_empty() => {
                    let i = rng.below(y.len());
                    y[i] += 1.0;
                }
                2 if !y.is_empty() => {
                    y.remove(0);
                    y.push(rng.below(50) as f64);
                }
                3 => y.truncate(rng.below(y.len() + 1)),
                4 => y.resize(120, 3.0),
                _ => {
                    let n = y.len();
                    if n > 0 {
                        y[n - 1] += 1.0;
                    }
                }
            }
            let want = reference(&y);
            changed_somewhere += usize::from(!want.is_empty());
            assert_eq!(memo.detect(&y), want, "round {round}: {y:?}");
        }
        assert!(
            changed_somewhere > 100,
            "the series have changepoints to find"
        );
    }

    #[test]
    fn a_quiet_start_then_a_burst_is_found() {
        let mut y = vec![0.0; 110];
        y.extend([50.0; 10]);
        let mut memo = RateChange::default();
        let found = memo.detect(&y);
        assert_eq!(found, reference(&y));
        assert!(found.contains(&109) || found.contains(&110), "{found:?}");
    }
}
