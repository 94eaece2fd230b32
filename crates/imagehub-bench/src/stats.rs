//! Pure statistics: percentiles (nearest rank), medians, and the imagehub/distribution
//! ratio and "gain" (how many times better, whichever direction is better).

use serde::{Deserialize, Serialize};

/// Which direction of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// Nearest-rank percentile (`p` in 0..=100) of already sorted values; `None` if empty.
pub fn percentile_sorted<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Median of values (mean of the two middle ones for even counts); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Plain ratio `ours / theirs`; `None` when undefined.
pub fn ratio(ours: f64, theirs: f64) -> Option<f64> {
    (theirs != 0.0 && ours.is_finite() && theirs.is_finite()).then(|| ours / theirs)
}

/// How many times better `ours` is than `theirs` (> 1 = ours better) given the direction.
pub fn gain(ours: f64, theirs: f64, better: Better) -> Option<f64> {
    match better {
        Better::Higher => ratio(ours, theirs),
        Better::Lower => ratio(theirs, ours),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50));
        assert_eq!(percentile_sorted(&v, 99.0), Some(99));
        assert_eq!(percentile_sorted(&v, 100.0), Some(100));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1));
        assert_eq!(percentile_sorted(&[7u64], 99.0), Some(7));
        assert_eq!(percentile_sorted::<u64>(&[], 50.0), None);
        let small = [10u64, 20, 30];
        assert_eq!(percentile_sorted(&small, 50.0), Some(20));
        assert_eq!(percentile_sorted(&small, 99.0), Some(30));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn ratios_and_gains() {
        assert_eq!(ratio(6.0, 2.0), Some(3.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(gain(6.0, 2.0, Better::Higher), Some(3.0));
        // Lower is better: 2 ms vs 6 ms is 3x better.
        assert_eq!(gain(2.0, 6.0, Better::Lower), Some(3.0));
    }
}
