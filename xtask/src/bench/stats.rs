//! Medians with min and max, as the bench's tables show them.

/// The median; NaN for no values.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median, min and max; `None` for no values.
pub fn stats(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((median(values.to_vec()), min, max))
}

/// A table cell: "median s (min–max)", and how many runs had it when not all did.
pub fn cell(values: &[f64], runs: usize) -> String {
    let Some((m, min, max)) = stats(values) else {
        return "-".into();
    };
    let mut s = format!("{m:.3} s ({min:.3}–{max:.3})");
    if values.len() < runs {
        s.push_str(&format!(" in {} of {runs} runs", values.len()));
    }
    s
}

/// The milliseconds the emulator reported in the first console line containing `marker`: the
/// number between `before` and " ms" (guest time under `-icount`, in the suites that boot until
/// one such line).
pub fn reported_ms(t: &crate::harness::qemu::Transcript, marker: &str, before: &str) -> anyhow::Result<f64> {
    use anyhow::Context;
    let line = t.find(marker).map(|(_, l)| l.clone()).with_context(|| format!("no line with {marker:?}:\n{}", t.text()))?;
    line.split(before).nth(1).and_then(|r| r.split(" ms").next()).and_then(|v| v.parse().ok()).with_context(|| format!("unreadable: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_cells() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        assert_eq!(cell(&[], 3), "-");
        assert_eq!(cell(&[2.0, 1.0, 4.0], 3), "2.000 s (1.000–4.000)");
        assert_eq!(cell(&[2.0], 3), "2.000 s (2.000–2.000) in 1 of 3 runs");
    }
}
