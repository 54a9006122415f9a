//! Sessions per user: page views separated by less than 5 minutes form a session.
//!
//! Run: `cargo run --example window_sessions`

use std::process::ExitCode;
use std::time::Duration;

use bwx::prelude::*;
use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{EventClock, SessionWindower};

/// A page view: (user, timestamp in ms since the epoch, page).
pub type View = (String, i64, String);

/// A session: (user, first view ms, last view ms, pages in time order).
pub type Session = (String, i64, i64, Vec<String>);

const MIN: i64 = 60_000;

/// Sample input, slightly out of order (the clock waits 1 minute for stragglers).
pub fn views() -> Vec<View> {
    let v = |user: &str, minute: i64, page: &str| (user.to_string(), minute * MIN, page.to_string());
    vec![
        v("ann", 0, "home"),
        v("bob", 1, "home"),
        v("ann", 3, "search"),
        v("ann", 2, "news"),
        v("bob", 4, "cart"),
        v("ann", 20, "home"),
        v("bob", 30, "checkout"),
        v("ann", 24, "search"),
        v("ann", 29, "cart"),
    ]
}

/// The flow: one row per closed session.
pub fn build(sample: Vec<View>, sessions: TestingSink<Session>) -> Dataflow {
    bwx::dataflow!(sessions {
        views   = input(TestingSource::new(sample));
        user    = views.key_on(|v: &View| v.0.clone());
        // (clock, windower, ordered): each session's views, in time order.
        session = user.collect_window(
            EventClock::replay(|v: &View| v.1, Duration::from_secs(60)),
            SessionWindower::new(Duration::from_secs(5 * 60)),
            true,
        );
        summary = session.down.map(|(user, (_, views)): (String, (i64, Vec<View>))| {
            let first = views.first().map_or(0, |v| v.1);
            let last = views.last().map_or(0, |v| v.1);
            (user, first, last, views.into_iter().map(|v| v.2).collect())
        });
        out     = summary.output(sessions);
    })
}

fn main() -> ExitCode {
    let sessions = TestingSink::new();
    let flow = build(views(), sessions.clone());
    if let Err(e) = bwx::run_main(&flow) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    for (user, first, last, pages) in sessions.take() {
        println!(
            "{user}: minutes {}..={} {}",
            first / MIN,
            last / MIN,
            pages.join(" > ")
        );
    }
    ExitCode::SUCCESS
}
