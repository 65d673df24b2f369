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
use std::path::Path;
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
    /// The request could not be planned or decided (an unknown resource, bad
    /// parameters): nothing was applied. The agent gets a tool error saying why.
    Refused(String),
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
    /// The agent's process exited (how, e.g. `exit status: 1`): its participation ends
    /// at once, without waiting out turn timeouts.
    Exited(String),
}

/// Starts an external agent's process, in `dir` when given, with an MCP server on its
/// stdio that sends the session's calls to `session`, and [`Msg::Exited`] when the process
/// ends. The returned guard stops the process when dropped.
pub trait Launcher: Send + Sync {
    fn launch(
        &self,
        cmd: &str,
        agent: &str,
        dir: Option<&Path>,
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
    /// A turn timed out and the agent has not called `next_turn` since: it is still busy
    /// with an old turn, or hung. Its turns do not wait for it until it catches up, so a
    /// hung agent costs one turn timeout, not one per remaining turn.
    behind: bool,
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
    /// The session ended or the process exited (how).
    Gone(String),
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
            behind: false,
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
            let received = if self.behind {
                // Only what it has already sent: a late agent is not waited for.
                match self.rx.try_recv() {
                    Ok(m) => Ok(Some(m)),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.in_turn = false;
                        return Step::Done;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => Ok(None),
                }
            } else {
                tokio::time::timeout(self.timeout, self.rx.recv()).await
            };
            let msg = match received {
                Err(_) => {
                    self.in_turn = false;
                    self.behind = true;
                    return Step::TimedOut;
                }
                Ok(None) => {
                    self.in_turn = false;
                    self.gone = true;
                    return Step::Gone("the agent ended its session".into());
                }
                Ok(Some(m)) => m,
            };
            match msg {
                Msg::Exited(how) => {
                    self.in_turn = false;
                    self.gone = true;
                    self.waiting = None;
                    return Step::Gone(format!("the agent's process exited ({how})"));
                }
                Msg::Call { request, reply } => return Step::Call(Box::new(request), reply),
                Msg::Observe { reply } => {
                    self.announced |= reply.send(turn()).is_ok();
                }
                // The agent has not seen this turn yet (its first `next_turn`, sent before
                // the run reached a turn): this turn is the one it waits for.
                Msg::EndTurn { reply } if !self.announced => {
                    self.behind = false;
                    self.announced = reply.send(turn()).is_ok();
                }
                Msg::EndTurn { reply } => {
                    self.behind = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn turn() -> Turn {
        Turn {
            t_s: 0.0,
            done: false,
            observation: None,
        }
    }

    fn session(timeout: Duration) -> (External, mpsc::Sender<Msg>) {
        let (tx, rx) = mpsc::channel(16);
        (External::new(rx, Box::new(()), 60_000, 0, timeout), tx)
    }

    #[tokio::test]
    async fn a_hung_agent_costs_one_turn_timeout_not_one_per_turn() {
        let (mut x, _tx) = session(Duration::from_millis(50));
        x.begin(0, turn);
        assert!(matches!(x.next(&turn).await, Step::TimedOut));
        // Hundreds of turns later it has still not called `next_turn`: none waits for it.
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            for k in 1..200 {
                x.begin(k * 60_000, turn);
                assert!(matches!(x.next(&turn).await, Step::Done), "turn {k}");
            }
        })
        .await;
        assert!(waited.is_ok(), "a late agent was waited for");
    }

    #[tokio::test]
    async fn a_late_agent_that_catches_up_takes_its_turns_again() {
        let (mut x, tx) = session(Duration::from_millis(50));
        x.begin(0, turn);
        assert!(matches!(x.next(&turn).await, Step::TimedOut));
        // It ends its old turn during the next one: it sees this turn at once, and this
        // turn waits for it again.
        let (reply, seen) = oneshot::channel();
        tx.send(Msg::EndTurn { reply }).await.unwrap();
        x.begin(60_000, turn);
        let next = x.next(&turn);
        let (again, _later) = oneshot::channel();
        let agent = async {
            seen.await.unwrap();
            tx.send(Msg::EndTurn { reply: again }).await.unwrap();
        };
        let (step, ()) = tokio::join!(next, agent);
        assert!(matches!(step, Step::Done));
        x.begin(120_000, turn);
        assert!(
            matches!(x.next(&turn).await, Step::TimedOut),
            "caught up: waited for again"
        );
    }

    #[tokio::test]
    async fn an_exited_process_ends_its_participation_at_once() {
        let (mut x, tx) = session(Duration::from_secs(3600));
        tx.send(Msg::Exited("exit status: 1".into())).await.unwrap();
        x.begin(0, turn);
        match x.next(&turn).await {
            Step::Gone(how) => assert!(how.contains("exit status: 1"), "{how}"),
            _ => panic!("expected the agent gone"),
        }
        for k in 1..100 {
            x.begin(k * 60_000, turn);
            assert!(matches!(x.next(&turn).await, Step::Done));
        }
    }
}
