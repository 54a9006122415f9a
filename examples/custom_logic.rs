//! Custom stateful logic with timers: close a user's session after a period of silence.
//!
//! ```text
//! cargo run --example custom_logic -- run
//! ```
//!
//! `StatefulLogic` is the most general per-key operator: the logic sees each item
//! (`on_item`), can ask to be woken at a system time (`notify_at`, then `on_notify`), sees
//! the end of input (`on_eof`), and says after each call whether the key's state lives on.
//! Here a session ends on "logout", after `timeout` without activity, or at end of input.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use bwx::connectors::stdio::StdOutSink;
use bwx::operators::IntoSink;
use bwx::prelude::*;
use bwx::testing::{TestingEvent, TestingSource};
use serde::{Deserialize, Serialize};

/// One user's session.
pub struct Session {
    actions: u32,
    /// When the session times out unless something happens first.
    deadline: SystemTime,
    timeout: Duration,
}

/// What recovery stores for a session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionState {
    actions: u32,
    deadline: SystemTime,
}

impl Session {
    /// The session of a key: from its stored state on resume, a new one otherwise.
    pub fn resume(state: Option<SessionState>, timeout: Duration) -> Session {
        match state {
            Some(s) => Session {
                actions: s.actions,
                deadline: s.deadline,
                timeout,
            },
            None => Session {
                actions: 0,
                deadline: SystemTime::now() + timeout,
                timeout,
            },
        }
    }
}

impl StatefulLogic<String, String> for Session {
    type State = SessionState;

    fn on_item(&mut self, action: String, out: &mut Vec<String>) -> StateAction {
        self.actions += 1;
        if action == "logout" {
            out.push(format!("logged out after {} actions", self.actions));
            // The key's state goes away; the user's next action starts a new session.
            return StateAction::Discard;
        }
        self.deadline = SystemTime::now() + self.timeout;
        StateAction::Retain
    }

    fn on_notify(&mut self, out: &mut Vec<String>) -> StateAction {
        out.push(format!("timed out after {} actions", self.actions));
        StateAction::Discard
    }

    fn on_eof(&mut self, out: &mut Vec<String>) -> StateAction {
        out.push(format!("still active after {} actions", self.actions));
        StateAction::Discard
    }

    /// Asked after every call: the operator sleeps until then, it does not poll.
    fn notify_at(&self) -> Option<SystemTime> {
        Some(self.deadline)
    }

    fn snapshot(&self) -> SessionState {
        SessionState {
            actions: self.actions,
            deadline: self.deadline,
        }
    }
}

/// User activity, with a quiet spell of three timeouts in the middle (a scripted stand-in
/// for a live feed).
pub fn scripted_activity(timeout: Duration) -> Vec<TestingEvent<(String, String)>> {
    let act = |user: &str, action: &str| TestingEvent::Item((user.to_string(), action.to_string()));
    vec![
        act("alice", "login"),
        act("bob", "login"),
        act("alice", "view"),
        act("bob", "view"),
        act("alice", "logout"),
        TestingEvent::Pause(timeout * 3),
        act("carol", "login"),
        act("bob", "login"),
    ]
}

/// The flow with sessions timing out after `timeout`, writing to `output`.
pub fn build_flow<M>(timeout: Duration, output: impl IntoSink<String, M>) -> Dataflow {
    bwx::dataflow!(sessions {
        activity = input(TestingSource::from_events(scripted_activity(timeout)));
        // The builder gets the key's stored state on resume, `None` for a new key.
        session  = activity.stateful(move |resume: Option<SessionState>| Session::resume(resume, timeout));
        format   = session.map(|(user, event)| format!("{user} {event}"));
        out      = format.output(output);
    })
}

fn main() -> ExitCode {
    bwx::cli::main(build_flow(Duration::from_secs(1), StdOutSink::new()))
}
