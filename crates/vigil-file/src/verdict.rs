//! One verdict from several analyses: each gives evidence (a score in [0, 1] with a
//! weight and a reason), combined as a weighted noisy-OR, so that independent signals add
//! up and no single weak one decides.

use serde::Serialize;

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Which analysis: `model`, `yara`, `virustotal`, `dynamic`, …
    pub source: String,
    /// How malicious it says the file is, in [0, 1].
    pub score: f64,
    /// How far it is trusted, in [0, 1].
    pub weight: f64,
    /// Why, in a sentence.
    pub reason: String,
}

impl Evidence {
    /// Evidence from `source`, clamped to [0, 1].
    pub fn new(source: &str, score: f64, weight: f64, reason: impl Into<String>) -> Evidence {
        let unit = |v: f64| {
            if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        Evidence {
            source: source.to_string(),
            score: unit(score),
            weight: unit(weight),
            reason: reason.into(),
        }
    }

    fn contribution(&self) -> f64 {
        self.score * self.weight
    }
}

/// The combined verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Combined score in [0, 1].
    pub score: f64,
    /// `score >= threshold`.
    pub malicious: bool,
    /// The threshold used.
    pub threshold: f64,
    /// What drove the score, strongest first, one sentence each.
    pub explanation: Vec<String>,
    /// The evidence itself.
    pub evidence: Vec<Evidence>,
}

/// Combines `evidence`: `1 - Π(1 - weight·score)`.
pub fn combine(mut evidence: Vec<Evidence>, threshold: f64) -> Verdict {
    evidence.sort_by(|a, b| b.contribution().total_cmp(&a.contribution()));
    let score = 1.0
        - evidence
            .iter()
            .map(|e| 1.0 - e.contribution())
            .product::<f64>();
    let explanation = if evidence.is_empty() {
        vec!["no analysis produced evidence".to_string()]
    } else {
        evidence
            .iter()
            .map(|e| format!("{} {:.2}: {}", e.source, e.score, e.reason))
            .collect()
    };
    Verdict {
        score,
        malicious: score >= threshold,
        threshold,
        explanation,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noisy_or_with_weights() {
        let v = combine(
            vec![
                Evidence::new("yara", 0.3, 1.0, "packed with UPX"),
                Evidence::new("model", 0.9, 0.9, "header model"),
            ],
            0.5,
        );
        // 1 - (1 - 0.81)(1 - 0.3)
        assert!((v.score - 0.867).abs() < 1e-9, "{}", v.score);
        assert!(v.malicious);
        assert!(
            v.explanation[0].starts_with("model 0.90"),
            "{:?}",
            v.explanation
        );
        let none = combine(vec![], 0.5);
        assert_eq!(none.score, 0.0);
        assert!(!none.malicious);
        let odd = Evidence::new("x", f64::NAN, 7.0, "");
        assert_eq!((odd.score, odd.weight), (0.0, 1.0));
    }
}
