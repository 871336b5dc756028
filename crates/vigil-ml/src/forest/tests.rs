use super::*;
use crate::rng::SplitMix64;

/// `n` rows of `n_features` uniform values in [0, 1), labelled by `label`; rows it returns
/// `None` for (too close to the boundary) are redrawn.
fn synthetic(
    n: usize,
    n_features: usize,
    seed: u64,
    label: impl Fn(&[f32]) -> Option<u8>,
) -> (Matrix, Vec<u8>) {
    let mut rng = SplitMix64::new(seed);
    let mut rows = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    while rows.len() < n {
        let row: Vec<f32> = (0..n_features)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .collect();
        if let Some(y) = label(&row) {
            rows.push(row);
            labels.push(y);
        }
    }
    (Matrix::from_rows(&rows).unwrap(), labels)
}

fn linear(row: &[f32]) -> Option<u8> {
    let margin = row[0] + row[1] - 1.0;
    (margin.abs() > 0.05).then_some(u8::from(margin > 0.0))
}

fn xor(row: &[f32]) -> Option<u8> {
    let near = |v: f32| (v - 0.5).abs() < 0.05;
    (!near(row[0]) && !near(row[1])).then_some(u8::from((row[0] > 0.5) != (row[1] > 0.5)))
}

fn accuracy(forest: &RandomForest, x: &Matrix, y: &[u8]) -> f64 {
    let scores = forest.predict_proba_batch(x).unwrap();
    let right = scores
        .iter()
        .zip(y)
        .filter(|&(&s, &l)| u8::from(s >= 0.5) == l)
        .count();
    right as f64 / y.len() as f64
}

fn small(n_trees: usize) -> ForestParams {
    ForestParams {
        n_trees,
        seed: 42,
        ..ForestParams::default()
    }
}

#[test]
fn learns_linearly_separable_data() {
    let (x, y) = synthetic(600, 5, 1, linear);
    let (x_test, y_test) = synthetic(600, 5, 2, linear);
    let forest = RandomForest::fit(&x, &y, &small(50)).unwrap();
    let acc = accuracy(&forest, &x_test, &y_test);
    assert!(acc > 0.95, "held-out accuracy {acc}");
}

#[test]
fn learns_xor() {
    let (x, y) = synthetic(600, 4, 3, xor);
    let (x_test, y_test) = synthetic(600, 4, 4, xor);
    let forest = RandomForest::fit(&x, &y, &small(50)).unwrap();
    let acc = accuracy(&forest, &x_test, &y_test);
    assert!(acc > 0.95, "held-out accuracy {acc}");
    // The two informative features carry nearly all the importance.
    let imp = forest.feature_importances();
    assert_eq!(imp.len(), 4);
    assert!((imp.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{imp:?}");
    assert!(imp[0] + imp[1] > 0.8, "{imp:?}");
}

#[test]
fn same_seed_same_forest_whatever_the_threads() {
    let (x, y) = synthetic(300, 6, 5, xor);
    let (x_test, _) = synthetic(100, 6, 6, xor);
    let with = |threads, seed| {
        let params = ForestParams {
            threads,
            seed,
            ..small(12)
        };
        RandomForest::fit(&x, &y, &params).unwrap()
    };
    let one = with(1, 9);
    let two = with(2, 9);
    assert_eq!(one, two);
    let bits = |f: &RandomForest| -> Vec<u32> {
        let scores = f.predict_proba_batch(&x_test).unwrap();
        scores.into_iter().map(f32::to_bits).collect()
    };
    assert_eq!(bits(&one), bits(&two));
    assert_eq!(one, with(3, 9));
    assert_ne!(one, with(1, 10));
}

#[test]
fn nan_is_missing_and_goes_left() {
    // Positives lack feature 0; negatives have it. Feature 1 is noise, feature 2 all NaN.
    let mut rng = SplitMix64::new(11);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for i in 0..200 {
        let noise = rng.below(1000) as f32;
        let positive = i % 2 == 0;
        let first = if positive { f32::NAN } else { noise };
        rows.push([first, noise, f32::NAN]);
        labels.push(u8::from(positive));
    }
    let x = Matrix::from_rows(&rows).unwrap();
    let forest = RandomForest::fit(&x, &labels, &small(20)).unwrap();
    assert!(forest.predict_proba(&[f32::NAN, 3.0, f32::NAN]).unwrap() > 0.9);
    // Any number goes with the numbers, even one below every training value.
    for first in [-5.0, 3.0, 500.0] {
        assert!(forest.predict_proba(&[first, 3.0, f32::NAN]).unwrap() < 0.1);
    }
    for row in [[f32::NAN; 3], [f32::INFINITY, f32::NEG_INFINITY, 0.0]] {
        let p = forest.predict_proba(&row).unwrap();
        assert!((0.0..=1.0).contains(&p), "{row:?} -> {p}");
    }
    assert_eq!(forest.feature_importances()[2], 0.0);
}

#[test]
fn infinite_and_extreme_values_train_without_trouble() {
    let rows = [
        [f32::NEG_INFINITY],
        [-1e30],
        [-0.0],
        [0.0],
        [f32::MAX],
        [f32::INFINITY],
        [f32::NAN],
    ];
    let labels = [0, 1, 0, 1, 0, 1, 0];
    let x = Matrix::from_rows(&rows).unwrap();
    let params = ForestParams {
        bootstrap: false,
        ..small(3)
    };
    let forest = RandomForest::fit(&x, &labels, &params).unwrap();
    // -0.0 and 0.0 are one value, so that pair stays mixed; everything else is separable
    // (NaN and −∞ could not be split by a finite threshold, but they share a label).
    for (row, &label) in rows.iter().zip(&labels).filter(|(r, _)| r[0] != 0.0) {
        let p = forest.predict_proba(row).unwrap();
        assert_eq!(p, f32::from(label), "{row:?}");
    }
    assert_eq!(forest.predict_proba(&[0.0]).unwrap(), 0.5);
}

#[test]
fn respects_depth_and_leaf_limits() {
    let (x, y) = synthetic(200, 3, 12, xor);
    let stumps = ForestParams {
        max_depth: Some(1),
        ..small(5)
    };
    let forest = RandomForest::fit(&x, &y, &stumps).unwrap();
    assert!(forest.trees.iter().all(|t| t.node_count() <= 3));

    let big_leaves = ForestParams {
        min_samples_leaf: 150,
        bootstrap: false,
        ..small(5)
    };
    let forest = RandomForest::fit(&x, &y, &big_leaves).unwrap();
    assert_eq!(
        forest.node_count(),
        5,
        "200 rows cannot split into two leaves of 150"
    );
}

#[test]
fn rejects_bad_shapes_and_labels() {
    let x = Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0]]).unwrap();
    let params = small(2);
    assert_eq!(
        RandomForest::fit(&x, &[0], &params),
        Err(MlError::LabelCount {
            got: 1,
            expected: 2
        })
    );
    assert_eq!(
        RandomForest::fit(&x, &[0, 7], &params),
        Err(MlError::BadLabel { index: 1, value: 7 })
    );
    assert_eq!(
        RandomForest::fit(&x, &[1, 1], &params),
        Err(MlError::OneClass { class: 1 })
    );
    assert_eq!(
        RandomForest::fit(&Matrix::default(), &[], &params),
        Err(MlError::Empty)
    );
    assert_eq!(
        RandomForest::fit(&Matrix::new(vec![], 2, 0).unwrap(), &[0, 1], &params),
        Err(MlError::NoFeatures)
    );
    let bad_params = ForestParams {
        max_features: MaxFeatures::Count(3),
        ..params.clone()
    };
    assert!(matches!(
        RandomForest::fit(&x, &[0, 1], &bad_params),
        Err(MlError::InvalidParam {
            name: "max_features",
            ..
        })
    ));

    let forest = RandomForest::fit(&x, &[0, 1], &params).unwrap();
    assert_eq!(
        forest.predict_proba(&[1.0]),
        Err(MlError::RowLength {
            got: 1,
            expected: 2
        })
    );
    let wide = Matrix::from_rows(&[[1.0, 2.0, 3.0]]).unwrap();
    assert!(matches!(
        forest.predict_proba_batch(&wide),
        Err(MlError::RowLength { got: 3, .. })
    ));
    assert_eq!(
        forest.predict_proba_batch(&Matrix::new(vec![], 0, 2).unwrap()),
        Ok(vec![])
    );
}
