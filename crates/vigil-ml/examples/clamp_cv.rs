//! Trains and cross-validates a random forest on the ClaMP malware data set (PE header
//! features, `class` 1 = malware), printing timings and the mean scores.
//!
//! ```text
//! cargo run --release -p vigil-ml --example clamp_cv -- PATH/ClaMP_Raw-train.csv 200
//! ```

use std::error::Error;
use std::time::Instant;

use vigil_ml::cv::cross_validate;
use vigil_ml::dataset::Dataset;
use vigil_ml::{ForestParams, RandomForest};

const FOLDS: usize = 5;
const CV_SEED: u64 = 2024;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), trees) = (args.next(), args.next()) else {
        return Err("usage: clamp_cv PATH [TREES (default 200)]".into());
    };
    let n_trees = trees.map_or(Ok(200), |t| t.parse())?;

    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let data = Dataset::from_csv(&text, "class")?;
    let positives = data.y.iter().filter(|&&l| l == 1).count();
    println!(
        "{path}: {} rows ({positives} malware), {} features",
        data.x.n_rows(),
        data.x.n_cols()
    );
    let params = ForestParams {
        n_trees,
        ..ForestParams::default()
    };

    let start = Instant::now();
    let forest = RandomForest::fit(&data.x, &data.y, &params)?;
    println!(
        "fit {n_trees} trees on all rows: {:.2} s, {} nodes",
        start.elapsed().as_secs_f64(),
        forest.node_count()
    );
    let model = serde_json::to_string(&forest)?;
    println!("model file: {:.2} MB of JSON", model.len() as f64 / 1e6);
    let mut ranked: Vec<(&String, f32)> = data
        .feature_names
        .iter()
        .zip(forest.feature_importances().iter().copied())
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = ranked[..5.min(ranked.len())]
        .iter()
        .map(|(name, imp)| format!("{name} {imp:.3}"))
        .collect();
    println!("top features: {}", top.join(", "));

    let start = Instant::now();
    let report = cross_validate(&data.x, &data.y, &params, FOLDS, CV_SEED)?;
    println!(
        "{FOLDS}-fold stratified CV: {:.2} s",
        start.elapsed().as_secs_f64()
    );
    for (i, fold) in report.folds.iter().enumerate() {
        println!(
            "  fold {i}: auc {:.4}  accuracy {:.4}  detection@1%fpr {:.4}  (n {}, positives {})",
            fold.auc, fold.accuracy, fold.detection_at_1pct_fpr, fold.n, fold.positives
        );
    }
    println!(
        "mean: auc {:.4}  accuracy {:.4}  detection@1%fpr {:.4}",
        report.mean.auc, report.mean.accuracy, report.mean.detection_at_1pct_fpr
    );
    Ok(())
}
