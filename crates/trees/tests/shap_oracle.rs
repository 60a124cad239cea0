//! TreeSHAP against the `shap` package's TreeExplainer (path-dependent, its C++ extension) on
//! fixed models and rows: `tests/data/shap_model.json` (the models as this crate serialises them,
//! written by this test with `MLOPS_WRITE_SHAP_MODEL=1`) and `tests/data/shap_oracle.json`
//! (written from it by `tests/data/shap_oracle.py`).

use linfa::prelude::*;
use mlops_trees::{ForestTask, GradientBoostingParams, Loss, RandomForestParams, TreeEnsemble};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/shap_model.json");

/// The fixed models and the rows they are explained on (`None`: a missing value).
#[derive(Serialize, Deserialize)]
struct Fixture {
    models: Vec<(String, TreeEnsemble)>,
    rows: Vec<Vec<Option<f64>>>,
}

/// What `shap` computed for each model: per row, per output, one value per feature then the
/// expected value.
#[derive(Deserialize)]
struct Oracle {
    shap_version: String,
    models: Vec<(String, Vec<Vec<Vec<f64>>>)>,
}

/// Four features, the last missing for a tenth of the rows; `y` for regression and a class of
/// three for classification.
fn data(n: usize, seed: u64) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, 4), |(_, j)| if j == 3 && rng.random_bool(0.1) { f64::NAN } else { rng.random_range(-2.0..2.0) });
    let y: Array1<f64> = x.rows().into_iter().map(|r| r[0].sin() * 3.0 + r[1] * r[2] + if r[3].is_nan() { 1.0 } else { r[3] }).collect();
    let classes = y.mapv(|v| {
        if v < -1.0 {
            0.0
        } else if v < 1.0 {
            1.0
        } else {
            2.0
        }
    });
    (x, y, classes)
}

fn fixture() -> Fixture {
    let (x, y, classes) = data(2000, 11);
    let regression = Dataset::new(x.clone(), y);
    let classification = Dataset::new(x, classes);
    let models = vec![
        ("boosted regression".to_string(), GradientBoostingParams::new(Loss::SquaredError).max_iter(20).fit(&regression).unwrap()),
        (
            "forest regression".into(),
            RandomForestParams::new(ForestTask::Regression).n_trees(5).max_depth(Some(6)).fit(&regression).unwrap(),
        ),
        ("boosted softmax".into(), GradientBoostingParams::new(Loss::Softmax { n_classes: 3 }).max_iter(10).fit(&classification).unwrap()),
        (
            "forest classes".into(),
            RandomForestParams::new(ForestTask::Classification { n_classes: 3 })
                .n_trees(5)
                .max_depth(Some(6))
                .fit(&classification)
                .unwrap(),
        ),
    ];
    let (rows, _, _) = data(40, 12);
    let rows = rows.rows().into_iter().map(|r| r.iter().map(|v| (!v.is_nan()).then_some(*v)).collect()).collect();
    Fixture { models, rows }
}

#[test]
fn tree_shap_matches_the_shap_package_on_fixed_models() {
    if std::env::var_os("MLOPS_WRITE_SHAP_MODEL").is_some() {
        std::fs::write(MODEL, serde_json::to_string(&fixture()).unwrap()).unwrap();
    }
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(MODEL).unwrap()).unwrap();
    let oracle: Oracle = serde_json::from_str(include_str!("data/shap_oracle.json")).unwrap();
    assert_eq!(fixture.models.len(), oracle.models.len());
    let mut compared = 0;
    for ((name, model), (oracle_name, expected)) in fixture.models.iter().zip(&oracle.models) {
        assert_eq!(name, oracle_name);
        for (row, expected) in fixture.rows.iter().zip(expected) {
            let row: Vec<f64> = row.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            let ours = model.contributions(&row);
            let ours: Vec<&[f64]> = ours.chunks(row.len() + 1).collect();
            assert_eq!(ours.len(), expected.len(), "{name}: outputs");
            for (output, (ours, theirs)) in ours.iter().zip(expected).enumerate() {
                for (feature, (a, b)) in ours.iter().zip(theirs).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                        "{name}, row {row:?}, output {output}, feature {feature}: {a} against shap {} {b}",
                        oracle.shap_version
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 40 * 5 * (1 + 1 + 3 + 3));
}
