//! One round of decisions being built: the proposals so far, and the state they lead to.
//!
//! Every proposal is tried on a copy of the state with [`ClusterState::simulate`] (the same `apply` the
//! monitors run), so later rules in the round see the effect of earlier ones and a proposal that would be
//! refused is never sent.

use mmm_consensus::{ClusterState, Command, Epoch, Request};

use super::config::EngineConfig;
use super::input::Input;
use super::output::{Action, LogLevel, Output};

/// A round in progress.
pub(crate) struct Round<'a> {
    /// The state as it will be once this round's proposals are committed.
    pub sim: ClusterState,
    /// The round's input.
    pub input: &'a Input,
    /// The configuration.
    pub cfg: &'a EngineConfig,
    /// What the round asks for so far.
    pub out: Output,
    /// Index of the last simulated entry (stand-in epochs; real ones come from Raft).
    next_index: u64,
}

impl<'a> Round<'a> {
    /// Starts a round on `state`.
    pub fn new(state: &ClusterState, input: &'a Input, cfg: &'a EngineConfig) -> Self {
        Round {
            sim: state.clone(),
            input,
            cfg,
            out: Output::default(),
            next_index: state.last_epoch.index,
        }
    }

    /// The leader's clock.
    pub fn now(&self) -> u64 {
        self.input.now_ms
    }

    /// Proposes one decision. Returns false (and logs) if the state would refuse it.
    pub fn propose(&mut self, reason: impl Into<String>, command: Command) -> bool {
        let req = Request {
            time_ms: self.now(),
            reason: reason.into(),
            command,
        };
        self.next_index += 1;
        let epoch = Epoch {
            term: self.sim.last_epoch.term,
            index: self.next_index,
        };
        match self.sim.simulate(epoch, &req).error {
            None => {
                self.out.proposals.push(req);
                true
            }
            Some(e) => {
                self.log(
                    LogLevel::Error,
                    None,
                    format!("decision not proposed ({e}): {}", req.reason),
                );
                false
            }
        }
    }

    /// Proposes several commands as one all-or-nothing decision (a single command is sent as is).
    pub fn propose_all(&mut self, reason: impl Into<String>, mut commands: Vec<Command>) -> bool {
        match commands.len() {
            0 => true,
            1 => {
                let c = commands.remove(0);
                self.propose(reason, c)
            }
            _ => self.propose(reason, Command::Batch(commands)),
        }
    }

    /// Adds an action.
    pub fn act(&mut self, action: Action) {
        self.out.actions.push(action);
    }

    /// Adds a log line.
    pub fn log(&mut self, level: LogLevel, host: Option<&str>, message: impl Into<String>) {
        self.out.actions.push(Action::Log {
            level,
            host: host.map(str::to_string),
            message: message.into(),
        });
    }
}
