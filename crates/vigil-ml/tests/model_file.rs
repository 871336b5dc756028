//! A trained forest survives a trip through its JSON model file, and a damaged file is
//! refused at load time rather than misbehaving at prediction time.

use serde_json::{Value, json};
use vigil_ml::{ForestParams, Matrix, RandomForest};

/// A small two-feature problem: positive when the first feature exceeds the second; every
/// fifth row has its first feature missing.
fn data() -> (Matrix, Vec<u8>) {
    let rows: Vec<[f32; 2]> = (0..120)
        .map(|i| {
            let a = ((i * 37) % 101) as f32;
            let b = ((i * 53) % 97) as f32;
            [if i % 5 == 0 { f32::NAN } else { a }, b]
        })
        .collect();
    let labels = rows.iter().map(|r| u8::from(r[0] > r[1])).collect();
    (Matrix::from_rows(&rows).unwrap(), labels)
}

fn trained() -> RandomForest {
    let (x, y) = data();
    let params = ForestParams {
        n_trees: 15,
        seed: 3,
        ..ForestParams::default()
    };
    RandomForest::fit(&x, &y, &params).unwrap()
}

fn load(model: &Value) -> Result<RandomForest, String> {
    serde_json::from_value(model.clone()).map_err(|e| e.to_string())
}

#[test]
fn round_trip_gives_identical_predictions() {
    let forest = trained();
    let text = serde_json::to_string(&forest).unwrap();
    let back: RandomForest = serde_json::from_str(&text).unwrap();
    assert_eq!(back, forest);

    let (x, _) = data();
    let before = forest.predict_proba_batch(&x).unwrap();
    let after = back.predict_proba_batch(&x).unwrap();
    let bits = |v: &[f32]| v.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&before), bits(&after));
    assert_eq!(back.feature_importances(), forest.feature_importances());
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}

#[test]
fn model_file_layout() {
    let model = serde_json::to_value(trained()).unwrap();
    assert_eq!(model["format"], 1);
    assert_eq!(model["n_features"], 2);
    let trees = model["trees"].as_array().unwrap();
    assert_eq!(trees.len(), 15);
    let mut fields: Vec<&str> = trees[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["feature", "left", "right", "threshold", "value"]);
}

#[test]
fn hand_written_stump_loads_and_predicts() {
    let stump = json!({
        "format": 1, "n_features": 1, "importances": [1.0],
        "trees": [{"feature": [0, 0, 0], "threshold": [1.5, 0, 0],
                   "left": [1, 0, 0], "right": [2, 0, 0], "value": [0.5, 0.0, 1.0]}]
    });
    let forest = load(&stump).unwrap();
    assert_eq!(forest.predict_proba(&[1.0]), Ok(0.0));
    assert_eq!(forest.predict_proba(&[2.0]), Ok(1.0));
    assert_eq!(forest.predict_proba(&[f32::NAN]), Ok(0.0));
}

/// Applies `damage` to the first tree of a valid model and expects `expected` in the error.
fn assert_rejected(damage: impl Fn(&mut Value), expected: &str) {
    let mut model = serde_json::to_value(trained()).unwrap();
    damage(&mut model["trees"][0]);
    let err = load(&model).expect_err("damaged model must not load");
    assert!(
        err.contains(expected),
        "`{err}` should mention `{expected}`"
    );
}

/// A split node below the root, and its parent.
fn inner_split(tree: &Value) -> (usize, usize) {
    let index = |field: &str| -> Vec<usize> {
        let values = tree[field].as_array().unwrap();
        values
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let (left, right) = (index("left"), index("right"));
    let child = (1..left.len())
        .find(|&i| left[i] != 0)
        .expect("a tree deeper than one split");
    let parent = (0..child)
        .find(|&p| left[p] == child || right[p] == child)
        .expect("every node but the root has a parent");
    (child, parent)
}

#[test]
fn child_index_out_of_range_is_rejected() {
    assert_rejected(
        |tree| tree["left"][0] = json!(100_000),
        "tree 0, node 0: left child 100000 is out of range",
    );
}

#[test]
fn cycle_is_rejected() {
    // parent → child → parent would loop forever at prediction time.
    assert_rejected(
        |tree| {
            let (child, parent) = inner_split(tree);
            tree["right"][child] = json!(parent);
        },
        "does not come after its parent",
    );
    // A node pointing at itself.
    assert_rejected(
        |tree| {
            let (child, _) = inner_split(tree);
            tree["left"][child] = json!(child);
        },
        "does not come after its parent",
    );
}

#[test]
fn other_damage_is_rejected() {
    assert_rejected(
        |tree| tree["feature"][0] = json!(9),
        "feature 9 is out of range for 2 features",
    );
    assert_rejected(
        |tree| tree["threshold"][0] = Value::Null,
        "invalid type: null",
    );
    assert_rejected(
        |tree| tree["value"][0] = json!(2.5),
        "value 2.5 is not a probability",
    );
    assert_rejected(
        |tree| {
            tree["value"].as_array_mut().unwrap().pop();
        },
        "node arrays differ in length",
    );
    assert_rejected(|tree| tree["depth"] = json!([]), "unknown field `depth`");

    let mut model = serde_json::to_value(trained()).unwrap();
    model["format"] = json!(2);
    assert!(
        load(&model)
            .unwrap_err()
            .contains("format 2 is not supported")
    );
    let mut model = serde_json::to_value(trained()).unwrap();
    model["importances"] = json!([1.0]);
    assert!(
        load(&model)
            .unwrap_err()
            .contains("1 importances for 2 features")
    );
    let mut model = serde_json::to_value(trained()).unwrap();
    model["trees"] = json!([]);
    assert!(load(&model).unwrap_err().contains("0 trees"));
    assert!(serde_json::from_str::<RandomForest>("{\"format\": 1, \"n_feat").is_err());
}
