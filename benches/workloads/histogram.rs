//! A latency histogram (ns) with bounded relative error, for the latency driver.

/// A latency histogram in ns: exact below 1024 ns, then 256 buckets per power of two
/// (a bucket's middle is within 0.2 % of any value in it); the maximum is exact.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    max: u64,
    total: u64,
}

impl Histogram {
    const EXACT: u64 = 1024;
    const SUB_BITS: u32 = 8;

    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; Self::bucket(u64::MAX) + 1],
            max: 0,
            total: 0,
        }
    }

    /// The bucket of `v`: `v` itself below `EXACT`, then per power of two `2^e` (e >= 10),
    /// 256 buckets of width `2^(e - 8)`.
    #[inline]
    pub fn bucket(v: u64) -> usize {
        if v < Self::EXACT {
            return v as usize;
        }
        let e = 63 - v.leading_zeros();
        let sub = (v >> (e - Self::SUB_BITS)) & ((1 << Self::SUB_BITS) - 1);
        Self::EXACT as usize + ((e - 10) as usize) * (1 << Self::SUB_BITS) + sub as usize
    }

    /// The middle of bucket `b`.
    pub fn value(b: usize) -> u64 {
        if b < Self::EXACT as usize {
            return b as u64;
        }
        let rest = b - Self::EXACT as usize;
        let e = (rest >> Self::SUB_BITS) as u32 + 10;
        let sub = (rest & ((1 << Self::SUB_BITS) - 1)) as u64;
        let width = 1u64 << (e - Self::SUB_BITS);
        (1u64 << e) + sub * width + width / 2
    }

    #[inline]
    pub fn add(&mut self, v: u64) {
        self.counts[Self::bucket(v)] += 1;
        self.max = self.max.max(v);
        self.total += 1;
    }

    /// The samples added.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The largest sample (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
        self.total += other.total;
    }

    /// The nearest-rank `q` quantile (the least value with at least `ceil(q · total)`
    /// samples at or below it), as its bucket's middle, at most the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::value(b).min(self.max);
            }
        }
        self.max
    }
}
