//! A figure measured over several runs: min, median and max (ratios are
//! taken between medians; the range says how much one run can be trusted).

use serde_json::{json, Value};

/// min/median/max of the runs of one figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// The runs, in run order.
    pub runs: Vec<f64>,
}

impl Spread {
    /// The spread of `runs` (NaN everywhere when there is none).
    pub fn of(runs: &[f64]) -> Spread {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Spread {
            min: sorted.first().copied().unwrap_or(f64::NAN),
            median,
            max: sorted.last().copied().unwrap_or(f64::NAN),
            runs: runs.to_vec(),
        }
    }

    /// Every run through `f` (a monotonic correction keeps min and max).
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Spread {
        Spread::of(&self.runs.iter().map(|&x| f(x)).collect::<Vec<_>>())
    }

    /// `{"min", "median", "max", "runs"}`, as `--json` and `--compare` read it.
    pub fn json(&self) -> Value {
        json!({
            "min": self.min,
            "median": self.median,
            "max": self.max,
            "runs": self.runs,
        })
    }

    /// `min-max` with `prec` decimals, for the tables' range column.
    pub fn range(&self, prec: usize) -> String {
        format!("{:.prec$}-{:.prec$}", self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_median_max() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(s.runs, vec![3.0, 1.0, 2.0]);
        let even = Spread::of(&[4.0, 1.0, 2.0, 10.0]);
        assert_eq!((even.min, even.median, even.max), (1.0, 3.0, 10.0));
        let one = Spread::of(&[5.5]);
        assert_eq!((one.min, one.median, one.max), (5.5, 5.5, 5.5));
        assert!(Spread::of(&[]).median.is_nan());
        let shifted = s.map(|x| x + 10.0);
        assert_eq!(
            (shifted.min, shifted.median, shifted.max),
            (11.0, 12.0, 13.0)
        );
        assert_eq!(s.range(1), "1.0-3.0");
        assert_eq!(s.json()["median"], 2.0);
    }
}
