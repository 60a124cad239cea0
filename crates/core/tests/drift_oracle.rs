//! The drift statistics against values computed by SciPy 1.17.1 on fixed samples
//! (`tests/data/drift_scipy.json`, from the project brief's oracles).

use mlops_core::drift::stats::{
    Sorted, chi_square, jensen_shannon, ks_two_sample, ks_weighted, std_dev, wasserstein, wasserstein_weighted,
};
use mlops_core::drift::{QuantileSketch, RANK_ERROR};

/// Equal to within 1e-9 relative (exactly, for zero).
fn close(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() <= 1e-9 * expected.abs(), "{what}: {actual:e} expected {expected:e}");
}

fn numbers(value: &serde_json::Value) -> Vec<f64> {
    let mut values: Vec<f64> = value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    values.sort_by(f64::total_cmp);
    values
}

#[test]
fn statistics_reproduce_scipy() {
    let oracle: serde_json::Value = serde_json::from_str(include_str!("data/drift_scipy.json")).unwrap();
    let cases = oracle["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for (index, case) in cases.iter().enumerate() {
        let what = |name: &str| format!("case {index} {name}");
        if case["kind"] == "numeric" {
            let (reference, current) = (numbers(&case["reference"]), numbers(&case["current"]));
            let ks = ks_two_sample(&reference, &current);
            close(ks.statistic, case["ks_statistic"].as_f64().unwrap(), &what("ks statistic"));
            close(ks.p_value, case["ks_pvalue_asymp"].as_f64().unwrap(), &what("ks p-value"));
            let distance = wasserstein(&reference, &current);
            close(distance, case["wasserstein"].as_f64().unwrap(), &what("wasserstein"));
            close(distance / std_dev(&reference), case["wasserstein_normed_by_ref_std"].as_f64().unwrap(), &what("normed wasserstein"));
            // As the monitor sees current data: sketched in parts (in their given order), merged.
            let mut sketch = QuantileSketch::default();
            for part in numbers_unsorted(&case["current"]).chunks(200) {
                let mut partial = QuantileSketch::default();
                part.iter().for_each(|&v| partial.insert(v));
                sketch.merge(&partial);
            }
            let (ks, distance) = sketch.with_sorted(|current| {
                (ks_weighted(Sorted::plain(&reference), current), wasserstein_weighted(Sorted::plain(&reference), current))
            });
            let range = current.last().unwrap().max(*reference.last().unwrap()) - current[0].min(reference[0]);
            assert!(
                (ks.statistic - case["ks_statistic"].as_f64().unwrap()).abs() <= RANK_ERROR,
                "{}: {}",
                what("sketched ks"),
                ks.statistic
            );
            assert!(
                (distance - case["wasserstein"].as_f64().unwrap()).abs() <= RANK_ERROR * range,
                "{}: {distance}",
                what("sketched wasserstein")
            );
        } else {
            let categories: Vec<&str> = case["categories"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
            let count = |sample: &serde_json::Value| -> Vec<f64> {
                categories.iter().map(|c| sample.as_array().unwrap().iter().filter(|v| v.as_str() == Some(c)).count() as f64).collect()
            };
            let (reference, current) = (count(&case["reference"]), count(&case["current"]));
            assert_eq!(reference, numbers_unsorted(&case["reference_counts"]), "case {index} counts");
            assert_eq!(current, numbers_unsorted(&case["current_counts"]), "case {index} counts");
            let test = chi_square(&reference, &current);
            close(test.statistic, case["chi2_statistic"].as_f64().unwrap(), &what("chi2 statistic"));
            close(test.p_value, case["chi2_pvalue"].as_f64().unwrap(), &what("chi2 p-value"));
            assert_eq!(test.dof as u64, case["chi2_dof"].as_u64().unwrap());
            close(jensen_shannon(&reference, &current), case["jensen_shannon_distance_base2"].as_f64().unwrap(), &what("jensen-shannon"));
        }
    }
}

fn numbers_unsorted(value: &serde_json::Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}
