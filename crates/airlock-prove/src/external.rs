//! External agents: any program, given the gate as an MCP server over its stdin/stdout.
//!
//! The run and the agent take turns. At each turn the simulator stops; the agent observes,
//! calls tools (each decided and, if allowed, applied at that instant of virtual time) and
//! ends its turn with `next_turn`, which returns once the simulator has reached the next
//! turn. A slow language-model agent is therefore judged on its decisions, not on its
//! latency. The MCP side lives with the MCP server (a [`Launcher`]); this module is the
//! run's side of the conversation.

use airlock_core::{ActionRequest, Provider};
use airlock_gate::Decision;
use airlock_sim::Observation;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What became of one tool call, for the agent's answer.
#[derive(Debug, Clone)]
pub enum CallAnswer {
    /// Guarded runs: the gate's decision.
    Decided(Box<Decision>),
    /// Unguarded runs: applied directly (`result` for reads), or failed.
    Direct {
        summary: String,
        result: Option<serde_json::Value>,
        error: Option<String>,
    },
}

/// What `next_turn` answers: the new instant and what monitoring shows, or that the run is
/// over.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    /// Seconds since the scored run started.
    pub t_s: f64,
    /// True once the run has ended: the agent should exit.
    pub done: bool,
    pub observation: Option<Observation>,
}

/// A message from the agent's MCP session to the run.
#[derive(Debug)]
pub enum Msg {
    /// A tool call, to decide and apply now.
    Call {
        request: ActionRequest,
        reply: oneshot::Sender<CallAnswer>,
    },
    /// What monitoring shows now.
    Observe { reply: oneshot::Sender<Turn> },
    /// The agent is done for this turn; answer at the next one.
    EndTurn { reply: oneshot::Sender<Turn> },
}

/// Starts an external agent's process with an MCP server on its stdio that sends the
/// session's calls to `session`. The returned guard stops the process when dropped.
pub trait Launcher: Send + Sync {
    fn launch(
        &self,
        cmd: &str,
        agent: &str,
        provider: Arc<dyn Provider>,
        session: mpsc::Sender<Msg>,
    ) -> Result<Box<dyn Send>, String>;
}

/// The run's side of an external agent's session.
pub(crate) struct External {
    rx: mpsc::Receiver<Msg>,
    /// `next_turn` calls waiting for the next turn.
    waiting: Option<oneshot::Sender<Turn>>,
    turn_ms: i64,
    next_turn: i64,
    timeout: Duration,
    /// The process ended its session (exited or closed stdio).
    gone: bool,
    in_turn: bool,
    /// Whether the agent has seen this turn's observation.
    announced: bool,
    _process: Box<dyn Send>,
}

/// What happened while waiting for the agent.
pub(crate) enum Step {
    /// A call to decide; answer on the sender.
    Call(Box<ActionRequest>, oneshot::Sender<CallAnswer>),
    /// The turn is over.
    Done,
    /// The agent did not end its turn in time.
    TimedOut,
    /// The session ended.
    Gone,
}

impl External {
    pub(crate) fn new(
        rx: mpsc::Receiver<Msg>,
        process: Box<dyn Send>,
        turn_ms: i64,
        first_turn: i64,
        timeout: Duration,
    ) -> Self {
        Self {
            rx,
            waiting: None,
            turn_ms,
            next_turn: first_turn,
            timeout,
            gone: false,
            in_turn: false,
            announced: false,
            _process: process,
        }
    }

    /// Starts a turn if one is due at `now`: the agent's pending `next_turn` returns.
    pub(crate) fn begin(&mut self, now: i64, turn: impl FnOnce() -> Turn) {
        if self.gone || now < self.next_turn {
            return;
        }
        self.next_turn = now + self.turn_ms;
        self.in_turn = true;
        self.announced = false;
        if let Some(w) = self.waiting.take() {
            // An agent that stopped listening is noticed at the next receive.
            self.announced = w.send(turn()).is_ok();
        }
    }

    /// The agent's next call of this turn, if any.
    pub(crate) async fn next(&mut self, turn: &(dyn Fn() -> Turn + Sync)) -> Step {
        if !self.in_turn {
            return Step::Done;
        }
        loop {
            let msg = match tokio::time::timeout(self.timeout, self.rx.recv()).await {
                Err(_) => {
                    self.in_turn = false;
                    return Step::TimedOut;
                }
                Ok(None) => {
                    self.in_turn = false;
                    self.gone = true;
                    return Step::Gone;
                }
                Ok(Some(m)) => m,
            };
            match msg {
                Msg::Call { request, reply } => return Step::Call(Box::new(request), reply),
                Msg::Observe { reply } => {
                    self.announced |= reply.send(turn()).is_ok();
                }
                // The agent has not seen this turn yet (its first `next_turn`, sent before
                // the run reached a turn): this turn is the one it waits for.
                Msg::EndTurn { reply } if !self.announced => {
                    self.announced = reply.send(turn()).is_ok();
                }
                Msg::EndTurn { reply } => {
                    self.waiting = Some(reply);
                    self.in_turn = false;
                    return Step::Done;
                }
            }
        }
    }

    /// The run is over: a waiting `next_turn` learns it.
    pub(crate) fn finish(&mut self, t_s: f64) {
        if let Some(w) = self.waiting.take() {
            let _ = w.send(Turn {
                t_s,
                done: true,
                observation: None,
            });
        }
    }
}
