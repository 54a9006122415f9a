//! The latency driver's histogram (benches/workloads/histogram.rs): quantiles within the
//! bucket error, exact maximum.

#[path = "../benches/workloads/histogram.rs"]
mod histogram;

use histogram::Histogram;

#[test]
fn quantiles_are_within_the_bucket_error() {
    let mut h = Histogram::new();
    for v in 1..=1000u64 {
        h.add(v * 1000);
    }
    assert_eq!((h.max(), h.total()), (1_000_000, 1000));
    let p50 = h.quantile(0.5) as f64;
    assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.003, "{p50}");
    assert_eq!(h.quantile(1.0), 1_000_000);
    let mut other = Histogram::new();
    other.add(5);
    h.merge(&other);
    assert_eq!((h.quantile(0.0), h.total()), (5, 1001));
}

#[test]
fn every_value_is_near_its_bucket_s_middle() {
    for v in [
        0u64,
        1,
        1023,
        1024,
        1025,
        4097,
        1 << 20,
        (1 << 40) + 12345,
        u64::MAX >> 1,
        u64::MAX,
    ] {
        let mid = Histogram::value(Histogram::bucket(v)) as f64;
        let err = (mid - v as f64).abs() / (v as f64).max(1.0);
        assert!(
            if v < 1024 {
                mid == v as f64
            } else {
                err <= 1.0 / 256.0
            },
            "{v} {mid}"
        );
    }
    // Buckets are ordered like their values.
    let mut last = 0;
    for v in (0..64).flat_map(|e| [1u64 << e, (1u64 << e) + (1 << e) / 3]) {
        let b = Histogram::bucket(v);
        assert!(b >= last, "{v}");
        last = b;
    }
}
