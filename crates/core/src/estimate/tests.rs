use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::metrics::evaluate;

#[test]
fn isotonic_regression_pools_violators_into_a_non_decreasing_step() {
    let fitted = Isotonic::fit(&[0.1, 0.2, 0.3, 0.4, 0.5], &[0.0, 1.0, 0.0, 1.0, 1.0]);
    let values: Vec<f64> = [0.1, 0.2, 0.3, 0.4, 0.5].iter().map(|&x| fitted.apply(x)).collect();
    assert_eq!(values, [0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!((fitted.apply(0.0), fitted.apply(0.25), fitted.apply(9.0)), (0.0, 0.5, 1.0), "below, between and past the data");
}

/// Class probabilities of `n` binary rows and a truth drawn from them (a calibrated model).
fn calibrated_rows(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let p: f64 = rng.random();
            (vec![1.0 - p, p], f64::from(u8::from(rng.random::<f64>() < p)))
        })
        .unzip()
}

#[test]
fn with_the_truth_as_the_estimate_each_expected_metric_is_the_realised_one() {
    let (predictions, y) = calibrated_rows(500, 1);
    let truth: Vec<Vec<f64>> = y.iter().map(|&y| vec![1.0 - y, y]).collect();
    let matrix = Array2::from_shape_vec((500, 2), predictions.concat()).unwrap();
    let realised = evaluate(Task::Binary, &y, &matrix);
    for metric in [Metric::Accuracy, Metric::Auc, Metric::F1, Metric::LogLoss] {
        let expected = expected_metric(metric, &predictions, &truth).unwrap();
        assert!((expected - realised[&metric]).abs() < 1e-9, "{}: {expected} against {}", metric.name(), realised[&metric]);
    }
    let errors: Vec<Vec<f64>> = predictions.iter().zip(&y).map(|(p, y)| vec![(p[1] - y).powi(2)]).collect();
    let values: Vec<Vec<f64>> = predictions.iter().map(|p| vec![p[1]]).collect();
    let rmse = evaluate(Task::Regression, &y, &Array2::from_shape_vec((500, 1), predictions.iter().map(|p| p[1]).collect()).unwrap());
    assert!((expected_metric(Metric::Rmse, &values, &errors).unwrap() - rmse[&Metric::Rmse]).abs() < 1e-12);
    assert_eq!(expected_metric(Metric::R2, &values, &errors), None, "R² needs the labels' spread");
}

#[test]
fn a_calibrated_classifier_s_metrics_are_estimated_without_its_labels() {
    // Calibration fitted on one sample; the metrics of another estimated from its probabilities.
    let (holdout, y_holdout) = calibrated_rows(4000, 2);
    let (current, y_current) = calibrated_rows(4000, 3);
    let classes = (0..2)
        .map(|k| {
            let truth: Vec<f64> = y_holdout.iter().map(|&y| f64::from(u8::from(y as usize == k))).collect();
            Isotonic::fit(&holdout.iter().map(|p| p[k]).collect::<Vec<_>>(), &truth)
        })
        .collect();
    let estimator = Estimator::Calibrated { classes };
    let Estimator::Calibrated { classes } = &estimator else { unreachable!() };
    let estimates: Vec<Vec<f64>> = current.iter().map(|p| classes.iter().zip(p).map(|(c, &p)| c.apply(p)).collect()).collect();
    let realised = evaluate(Task::Binary, &y_current, &Array2::from_shape_vec((4000, 2), current.concat()).unwrap());
    for metric in [Metric::Accuracy, Metric::Auc, Metric::F1] {
        let expected = expected_metric(metric, &current, &estimates).unwrap();
        assert!((expected - realised[&metric]).abs() < 0.03, "{}: {expected:.4} against {:.4}", metric.name(), realised[&metric]);
    }
}
