//! The gate: the async engine that runs every agent action through the flow —
//! authenticate, plan, assess, decide, journal, hold or apply, bake, revert.
//!
//! It owns no I/O of its own: the journal, providers, signal source and clock are handed
//! in, so the same engine serves a live server and a proving-ground run on virtual time.

mod bake;
pub mod behaviour;
mod engine;
pub mod feed;
pub mod frontdoor;
mod holds;
mod rate_change;
mod reconcile;
mod redact;
mod slots;
mod sync;
pub mod tracked;

pub use bake::{BakeConfig, BakeOutcome, RevertCheck, UndoItem};
pub use behaviour::{AnomalyConfig, Behaviour, Score};
pub use engine::{
    ApprovalView, ContainedView, CounterOffer, Decision, Gate, GateConfig, GateError, PlanView,
    Principal, PrincipalKind2, Profile, RanReport, issue_token, issue_token_with_profile,
    revoke_token, token_hash,
};
pub use feed::{FeedStart, Notifying};
pub use frontdoor::{ActionView, DoorConfig, FrontDoor, NoObserver, Observer};
pub use reconcile::Reconciled;
pub use redact::{Redactor, redact};
