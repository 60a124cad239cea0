use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

#[test]
fn a_key_keeps_its_route_and_the_weight_sets_the_share() {
    for weight in [1u8, 10, 50, 90] {
        let routed = (0..20_000).filter(|i| routes_to_canary(&format!("entity-{i}"), weight)).count();
        let share = routed as f64 / 20_000.0 * 100.0;
        assert!((share - f64::from(weight)).abs() < 1.0, "weight {weight}% routed {share:.2}%");
    }
    for i in 0..1000 {
        let key = format!("request-{i}");
        assert_eq!(routes_to_canary(&key, 30), routes_to_canary(&key, 30), "{key}");
        // A key on the canary at a weight stays on it when the weight grows.
        assert!(!routes_to_canary(&key, 30) || routes_to_canary(&key, 60), "{key}");
    }
    assert!(!routes_to_canary("anyone", 0) && routes_to_canary("anyone", 100));
}

#[test]
fn losses_follow_the_metric() {
    assert_eq!(row_loss(Metric::Rmse, Outcome::Value { predicted: 3.0, actual: 1.0 }), 4.0);
    assert_eq!(row_loss(Metric::Mae, Outcome::Value { predicted: 3.0, actual: 1.0 }), 2.0);
    let brier = row_loss(Metric::Auc, Outcome::Class { probabilities: &[0.25, 0.75], actual: 1 });
    assert!((brier - 0.125).abs() < 1e-12, "{brier}");
}

#[test]
fn samples_match_their_two_pass_moments() {
    let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    let sample: Sample = values.iter().copied().collect();
    assert_eq!((sample.n, sample.mean), (8, 5.0));
    assert!((sample.variance() - 32.0 / 7.0).abs() < 1e-12);
}

/// Squared errors of normal residuals with standard deviation `sd`.
fn losses(rng: &mut ChaCha8Rng, sd: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            (sd * z).powi(2)
        })
        .collect()
}

/// Feeds a canary stream (champion residuals of sd 60, challenger of `challenger_sd`), 50 labels
/// per version at a time, and looks after each batch; returns the first decision and the labels
/// per version it took, or `Collecting` after `max` labels.
fn canary_stream(seed: u64, challenger_sd: f64, max: usize, policy: &CanaryPolicy) -> (Verdict, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut evidence = Evidence::default();
    while evidence.champion.n < max {
        losses(&mut rng, 60.0, 50).into_iter().for_each(|x| evidence.champion.push(x));
        losses(&mut rng, challenger_sd, 50).into_iter().for_each(|x| evidence.challenger.push(x));
        let judgement = judge(&evidence, policy);
        if judgement.verdict != Verdict::Collecting {
            return (judgement.verdict, evidence.champion.n);
        }
    }
    (Verdict::Collecting, evidence.champion.n)
}

#[test]
fn a_better_canary_is_promoted_a_worse_one_rolled_back_and_an_equal_one_left_undecided() {
    let policy = CanaryPolicy::default();
    let (verdict, labels) = canary_stream(1, 45.0, 20_000, &policy);
    assert_eq!(verdict, Verdict::Promote, "after {labels} labels");
    assert!(labels >= policy.min_labels);
    let (verdict, labels) = canary_stream(2, 75.0, 20_000, &policy);
    assert_eq!(verdict, Verdict::Rollback, "after {labels} labels");
    // Equal models: no decision however long the test looks (alpha bounds the chance it ever
    // decides; 20 seeds show it rarely does).
    let wrong = (10..30).filter(|&seed| canary_stream(seed, 60.0, 5_000, &policy).0 != Verdict::Collecting).count();
    assert!(wrong <= 2, "{wrong} of 20 equal streams were decided");
    assert_eq!(canary_stream(3, 60.0, 5_000, &policy).0, Verdict::Collecting);
}

#[test]
fn thirty_labels_decide_nothing_however_large_the_difference() {
    let policy = CanaryPolicy::default();
    let evidence = Evidence {
        champion: [100.0, 120.0, 90.0].repeat(10).into_iter().collect(),
        challenger: [1.0, 2.0, 1.5].repeat(10).into_iter().collect(),
        paired: None,
    };
    let judgement = judge(&evidence, &policy);
    assert_eq!(judgement.verdict, Verdict::Collecting);
    assert!(judgement.reason.contains("needs 200"), "{}", judgement.reason);
    assert!(judgement.p_value < 1e-6, "the evidence itself is strong: {}", judgement.p_value);
}

#[test]
fn a_shadow_is_judged_on_paired_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let policy = CanaryPolicy::default();
    let mut evidence = Evidence { paired: Some(Sample::default()), ..Evidence::default() };
    // The same rows: the challenger's residual is the champion's shrunk by 10% plus a little noise.
    for _ in 0..2_000 {
        let champion = losses(&mut rng, 60.0, 1)[0].sqrt();
        let challenger = 0.9 * champion + losses(&mut rng, 2.0, 1)[0].sqrt();
        let (a, b) = (champion * champion, challenger * challenger);
        evidence.champion.push(a);
        evidence.challenger.push(b);
        evidence.paired.as_mut().unwrap().push(a - b);
    }
    let judgement = judge(&evidence, &policy);
    assert_eq!(judgement.verdict, Verdict::Promote, "{}", judgement.reason);
    let unpaired = judge(&Evidence { paired: None, ..evidence.clone() }, &policy);
    assert!(judgement.p_value < unpaired.p_value, "pairing removes the rows' own variance");
}

#[test]
fn a_challenger_past_its_error_or_latency_bound_is_withdrawn() {
    let policy = CanaryPolicy { max_error_rate: 0.1, max_p99_ms: Some(5.0), guard_requests: 20, ..CanaryPolicy::default() };
    let mut guard = Guard::default();
    for i in 0..19 {
        guard.record(i % 2 == 0, 1.0);
    }
    assert_eq!(guard.breach(&policy), None, "too few requests to judge");
    guard.record(false, 1.0);
    assert!(guard.breach(&policy).unwrap().contains("10 of 20 requests failed"));
    let mut slow = Guard::default();
    for i in 0..100 {
        slow.record(false, if i < 98 { 1.0 } else { 50.0 });
    }
    assert!(slow.breach(&policy).unwrap().contains("p99 50.000 ms"), "{:?}", slow.breach(&policy));
    let mut healthy = Guard::default();
    for _ in 0..300 {
        healthy.record(false, 1.0);
    }
    assert_eq!(healthy.breach(&policy), None);
}
