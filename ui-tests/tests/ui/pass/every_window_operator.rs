//! Every windowing operator of the macro's table type-checks against the builder and runs.
use std::time::Duration;

use bwx::testing::{TestingSink, TestingSource};
use bwx::windowing::{Emit, EventClock, TumblingWindower, WindowLogic, each_side};

/// Emits the last value of each window.
struct Last(Option<i64>);

impl WindowLogic<i64, i64> for Last {
    type State = Option<i64>;
    fn on_value(&mut self, v: i64, _out: &mut Emit<'_, i64, i64>) {
        self.0 = Some(v);
    }
    fn on_merge(&mut self, other: Self, _out: &mut Emit<'_, i64, i64>) {
        self.0 = other.0.or(self.0);
    }
    fn on_close(self, out: &mut Emit<'_, i64, i64>) {
        if let Some(v) = self.0 {
            out.emit(v);
        }
    }
    fn snapshot(&self) -> Option<i64> {
        self.0
    }
}

fn main() {
    let clock = || EventClock::replay(|ts: &i64| *ts, Duration::ZERO);
    // The join's sides are read independently: wait for stragglers so that none is late.
    let patient = || {
        EventClock::replay(each_side((|ts: &i64| *ts, |ts: &i64| *ts)), Duration::from_millis(100))
    };
    let win = || TumblingWindower::new(Duration::from_millis(10), 0).unwrap();
    let (sink, joined_sink) = (TestingSink::new(), TestingSink::new());
    let flow = bwx::dataflow!(windows {
        items     = input(TestingSource::new(vec![(1u8, 1i64), (1, 2), (1, 15)]));
        others    = input(TestingSource::new(vec![(1u8, 3i64)]));
        custom    = items.window(clock(), win(), |s: Option<Option<i64>>| Last(s.flatten()), true);
        folded    = items.fold_window(clock(), win(), || 0i64, |s, x| s + x, |a, b| a + b, false);
        reduced   = items.reduce_window(clock(), win(), |a, b| a + b);
        maxed     = items.max_window(clock(), win(), |v: &i64| *v);
        minned    = items.min_window(clock(), win(), |v: &i64| *v);
        counted   = items.count_window(
            EventClock::replay(|(_, ts): &(u8, i64)| *ts, Duration::ZERO),
            win(),
            |(k, _): &(u8, i64)| *k,
        );
        collected = items.collect_window(clock(), win(), true);
        joined    = join_window(items, others, clock = patient(), windower = win(), ordered = false);
        all       = merge(custom.down, folded.down, reduced.down, maxed.down, minned.down);
        out       = all.output(sink.clone());
        joined_out = joined.down.output(joined_sink.clone());
        _counts   = counted.down.map(|(k, (w, n))| (k, w, n));
        _lists    = collected.down.map(|(k, (w, values))| (k, w, values.len()));
        _late     = folded.late.map(|x| x);
        _meta     = reduced.meta.map(|x| x);
        _unused   = maxed.meta;
    });
    bwx::run_main(&flow).unwrap();
    // Five operators, two windows each.
    assert_eq!(sink.take().len(), 10);
    assert_eq!(
        joined_sink.take(),
        vec![(1, (0, (Some(2), Some(3)))), (1, (1, (Some(15), None)))]
    );
}
