//! The distribution of the two-sided one-sample Kolmogorov-Smirnov statistic `D_n`, computed
//! the way SciPy's `kstwo` does (Simard and L'Ecuyer, 2011): exact methods for small `n` or
//! small `n d`, Smirnov's one-sided sum where the two tails are nearly disjoint, the Pelz-Good
//! expansion elsewhere. The two-sample KS test uses it with `n = round(n1 n2 / (n1 + n2))`.

use std::f64::consts::PI;

use statrs::function::gamma::ln_gamma;

/// `P(D_n > d)`.
pub fn survival(n: u64, d: f64) -> f64 {
    if d.is_nan() {
        return f64::NAN;
    }
    if d >= 1.0 {
        return 0.0;
    }
    if d <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * d;
    if t <= 0.5 {
        return 1.0;
    }
    if t <= 1.0 {
        // Ruben and Gambino: P(D_n <= d) = n! / n^n (2t - 1)^n.
        let cdf = (ln_gamma(nf + 1.0) - nf * nf.ln() + nf * (2.0 * t - 1.0).ln()).exp();
        return clip(1.0 - cdf);
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - d).powf(nf));
    }
    if d >= 0.5 {
        return clip(2.0 * smirnov(n, d));
    }
    let n_d_squared = t * d;
    if n <= 140 {
        if n_d_squared <= 4.0 {
            return clip(1.0 - durbin_matrix(n, d));
        }
        return clip(2.0 * smirnov(n, d));
    }
    if n_d_squared >= 370.0 {
        return 0.0;
    }
    if n_d_squared >= 2.2 {
        return clip(2.0 * smirnov(n, d));
    }
    let cdf = if n <= 100_000 && nf * d.powf(1.5) <= 1.4 { durbin_matrix(n, d) } else { pelz_good(n, d) };
    clip(1.0 - cdf)
}

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// Smirnov's one-sided `P(D_n^+ >= d)`, the exact Birnbaum-Tingey sum, in logarithms.
pub fn smirnov(n: u64, d: f64) -> f64 {
    let nf = n as f64;
    let last = (nf * (1.0 - d)).floor() as u64;
    let ln_n_factorial = ln_gamma(nf + 1.0);
    let logs: Vec<f64> = (0..=last)
        .filter_map(|j| {
            let jf = j as f64;
            let below = 1.0 - d - jf / nf;
            let above = d + jf / nf;
            if below <= 0.0 && n > j {
                return None;
            }
            let ln_choose = ln_n_factorial - ln_gamma(jf + 1.0) - ln_gamma(nf - jf + 1.0);
            let ln_below = if n == j { 0.0 } else { (nf - jf) * below.ln() };
            Some(ln_choose + ln_below + (jf - 1.0) * above.ln())
        })
        .collect();
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return 0.0;
    }
    let sum: f64 = logs.iter().map(|l| (l - max).exp()).sum();
    (d.ln() + max + sum.ln()).exp()
}

/// `P(D_n < d)` exactly, by Durbin's matrix formula as evaluated by Marsaglia, Tsang and Wang
/// (2003), with the matrix power kept in range by tracking a power-of-two scale.
fn durbin_matrix(n: u64, d: f64) -> f64 {
    let nd = n as f64 * d;
    let k = nd.floor() as usize + 1;
    let m = 2 * k - 1;
    let h = k as f64 - nd;
    let mut matrix = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..m {
            if i + 1 >= j {
                matrix[i * m + j] = 1.0;
            }
        }
    }
    for i in 0..m {
        matrix[i * m] -= h.powi(i as i32 + 1);
        matrix[(m - 1) * m + i] -= h.powi((m - i) as i32);
    }
    if 2.0 * h - 1.0 > 0.0 {
        matrix[(m - 1) * m] += (2.0 * h - 1.0).powi(m as i32);
    }
    for i in 0..m {
        for j in 0..m {
            if i + 1 > j {
                matrix[i * m + j] /= (1..=(i + 1 - j)).map(|f| f as f64).product::<f64>();
            }
        }
    }
    let (power, log2_scale) = matrix_power(&matrix, m, n);
    let entry = power[(k - 1) * m + (k - 1)];
    let nf = n as f64;
    (entry.ln() + log2_scale * std::f64::consts::LN_2 + ln_gamma(nf + 1.0) - nf * nf.ln()).exp()
}

fn multiply(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * m];
    for i in 0..m {
        for l in 0..m {
            let a_il = a[i * m + l];
            if a_il != 0.0 {
                for j in 0..m {
                    out[i * m + j] += a_il * b[l * m + j];
                }
            }
        }
    }
    out
}

/// `matrix^n` as `(values, log2 of the factor they were divided by)`.
fn matrix_power(matrix: &[f64], m: usize, n: u64) -> (Vec<f64>, f64) {
    let rescale = |values: &mut Vec<f64>, log2: &mut f64| {
        let largest = values.iter().fold(0.0f64, |acc, v| acc.max(v.abs()));
        if largest > 1e100 || (largest > 0.0 && largest < 1e-100) {
            let exponent = largest.log2().floor();
            let factor = (-exponent).exp2();
            values.iter_mut().for_each(|v| *v *= factor);
            *log2 += exponent;
        }
    };
    let (mut result, mut result_log2) = (None::<Vec<f64>>, 0.0);
    let (mut base, mut base_log2) = (matrix.to_vec(), 0.0);
    let mut remaining = n;
    while remaining > 0 {
        if remaining & 1 == 1 {
            result = Some(match result {
                None => {
                    result_log2 = base_log2;
                    base.clone()
                }
                Some(r) => {
                    result_log2 += base_log2;
                    multiply(&r, &base, m)
                }
            });
            if let Some(r) = result.as_mut() {
                rescale(r, &mut result_log2);
            }
        }
        remaining >>= 1;
        if remaining > 0 {
            base = multiply(&base, &base, m);
            base_log2 *= 2.0;
            rescale(&mut base, &mut base_log2);
        }
    }
    (result.expect("n is at least 1"), result_log2)
}

/// `P(D_n <= d)` by the Pelz-Good (1976) expansion in `1/sqrt(n)`, with `z = d sqrt(n)`.
fn pelz_good(n: u64, d: f64) -> f64 {
    let nf = n as f64;
    let z = d * nf.sqrt();
    let (z2, z4, z6, z8) = (z * z, z.powi(4), z.powi(6), z.powi(8));
    let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
    let root_half_pi = (PI / 2.0).sqrt();
    let (mut k0, mut k1, mut k2, mut k3) = (0.0, 0.0, 0.0, 0.0);
    // Sums over half-integers u = k - 1/2 with weight exp(-pi^2 u^2 / (2 z^2)).
    for k in 1..=200 {
        let u2 = (f64::from(k) - 0.5).powi(2);
        let weight = (-pi2 * u2 / (2.0 * z2)).exp();
        if weight < 1e-300 {
            break;
        }
        k0 += weight;
        k1 += (pi2 * u2 - z2) * weight;
        k2 += (6.0 * z6 + 2.0 * z4 + pi2 * (2.0 * z4 - 5.0 * z2) * u2 + pi4 * (1.0 - 2.0 * z2) * u2 * u2) * weight;
        k3 += (pi6 * (5.0 - 30.0 * z2) * u2.powi(3) + pi4 * (212.0 * z4 - 60.0 * z2) * u2 * u2 + pi2 * (135.0 * z4 - 96.0 * z6) * u2
            - 30.0 * z6
            - 90.0 * z8)
            * weight;
    }
    // Sums over integers k with weight exp(-pi^2 k^2 / (2 z^2)).
    let (mut k2_extra, mut k3_extra) = (0.0, 0.0);
    for k in 1..=200 {
        let k2_ = f64::from(k).powi(2);
        let weight = (-pi2 * k2_ / (2.0 * z2)).exp();
        if weight < 1e-300 {
            break;
        }
        k2_extra += pi2 * k2_ * weight;
        k3_extra += (3.0 * pi2 * k2_ * z2 - pi4 * k2_ * k2_) * weight;
    }
    let k0 = (2.0 * PI).sqrt() / z * k0;
    let k1 = root_half_pi / (3.0 * z4) * k1;
    let k2 = root_half_pi / (36.0 * z.powi(7)) * k2 - root_half_pi / (18.0 * z.powi(3)) * k2_extra;
    let k3 = root_half_pi / (3240.0 * z.powi(10)) * k3 + root_half_pi / (108.0 * z6) * k3_extra;
    k0 + k1 / nf.sqrt() + k2 / nf + k3 / nf.powf(1.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_methods_agree_where_their_ranges_meet() {
        // Exact matrix against Pelz-Good and Smirnov near their switch-over points.
        for (n, d) in [(200, 0.05), (1000, 0.02), (500, 0.03)] {
            let exact = durbin_matrix(n, d);
            let expansion = pelz_good(n, d);
            assert!((exact - expansion).abs() < 1e-6, "n {n} d {d}: {exact} vs {expansion}");
        }
        for (n, d) in [(150, 0.13), (300, 0.09)] {
            let exact = 1.0 - durbin_matrix(n, d);
            let tails = 2.0 * smirnov(n, d);
            assert!((exact - tails).abs() / exact < 1e-3, "n {n} d {d}: {exact} vs {tails}");
        }
    }

    #[test]
    fn known_values() {
        // n = 1: D_1 = max(U, 1 - U), P(D_1 > d) = 2 (1 - d) for d >= 1/2.
        assert!((survival(1, 0.75) - 0.5).abs() < 1e-15);
        assert_eq!(survival(10, 0.0), 1.0);
        assert_eq!(survival(10, 1.0), 0.0);
        // Monotone in d.
        let values: Vec<f64> = (1..100).map(|i| survival(50, f64::from(i) / 100.0)).collect();
        assert!(values.windows(2).all(|w| w[0] >= w[1]));
    }
}
