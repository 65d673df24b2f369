//! What every crate's fuzz targets share: case counts, the hang watchdog and random edits
//! of a text. Included by path (`#[path = "../../../testsupport/fuzz.rs"] mod harness;`)
//! from each `tests/fuzz.rs`; each crate keeps its own generators.
// Each fuzz file uses a part of this.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use std::fmt::Debug;
use std::sync::mpsc;
use std::time::Duration;

/// Cases per property: `AIRLOCK_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("AIRLOCK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// No failure files in the source tree: a failing case is printed, and shrunk, instead.
pub fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

/// How long one case may take before it counts as a hang.
pub const WATCHDOG: Duration = Duration::from_secs(5);

/// Runs `f` on its own thread and fails if it has not returned within [`WATCHDOG`];
/// a panic inside is passed on with its message.
pub fn guarded<T: Send + 'static>(input: &impl Debug, f: impl FnOnce() -> T + Send + 'static) -> T {
    guarded_for(WATCHDOG, input, f)
}

/// [`guarded`] with another limit. The thread has an 8 MiB stack, as a main thread would.
pub fn guarded_for<T: Send + 'static>(
    limit: Duration,
    input: &impl Debug,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => panic!("no answer for {input:?}"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("hang: no answer within {limit:?} for {input:?}")
        }
    }
}

/// The char boundary at or before `at % (len + 1)`.
pub fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A random edit of a text: insert, delete or duplicate a piece of it, or cut it short.
#[derive(Debug, Clone)]
pub enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
}

/// Edits that insert one of `tokens` (the syntax of the format under test) or a piece of
/// `text`.
pub fn mutation(
    tokens: &'static [&'static str],
    text: impl Strategy<Value = String> + 'static,
) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (
            any::<usize>(),
            prop_oneof![prop::sample::select(tokens).prop_map(str::to_string), text]
        )
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), 0usize..8).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), 0usize..32).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// `s` with `edits` applied in order.
pub fn mutate(mut s: String, edits: &[Mutation]) -> String {
    for e in edits {
        match e {
            Mutation::Insert(at, text) => {
                let i = boundary(&s, *at);
                s.insert_str(i, text);
            }
            Mutation::Delete(at, n) => {
                let i = boundary(&s, *at);
                let j = boundary(&s, i + n);
                if j >= i {
                    s.replace_range(i..j, "");
                }
            }
            Mutation::Duplicate(at, n) => {
                let i = boundary(&s, *at);
                let j = boundary(&s, i + n);
                if j >= i {
                    let piece = s[i..j].to_string();
                    s.insert_str(j, &piece);
                }
            }
            Mutation::Truncate(at) => {
                let i = boundary(&s, *at);
                s.truncate(i);
            }
        }
    }
    s
}
