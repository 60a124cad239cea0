//! A hash of each row's typed values that is the same in every build, process and machine:
//! XXH3 (a fixed, published algorithm) over each cell's bytes, chained column by column. Prep
//! cuts a batch's rows into buckets by ranges of it, so equal rows of any shard meet in one
//! bucket even when the map items that read the shards ran different builds.

use polars::prelude::*;
use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Where every row's hash starts.
const START: u64 = 0x6d6c_6f70_7372_6f77;
/// Mixed into the running hash for a missing cell, so that it differs from every value
/// (an empty text included).
const MISSING: u64 = 0x9e37_79b9_7f4a_7c15;

/// The stable hash of each row of `columns` (all of one height), hashed in parallel blocks.
pub(crate) fn stable_row_hashes(columns: &[&Column], height: usize) -> PolarsResult<Vec<u64>> {
    let block = height.div_ceil(4 * rayon::current_num_threads()).max(1);
    let offsets: Vec<usize> = (0..height).step_by(block).collect();
    Ok(offsets
        .into_par_iter()
        .map(|offset| {
            let mut hashes = vec![START; block.min(height - offset)];
            for column in columns {
                chain(&mut hashes, &column.slice(offset as i64, block).as_materialized_series().rechunk())?;
            }
            Ok(hashes)
        })
        .collect::<PolarsResult<Vec<Vec<u64>>>>()?
        .concat())
}

/// Chains each cell of `series` into its row's hash.
fn chain(hashes: &mut [u64], series: &Series) -> PolarsResult<()> {
    match series.dtype() {
        DataType::String => hashes.iter_mut().zip(series.str()?.iter()).for_each(|(hash, value)| cell(hash, value)),
        DataType::Boolean => {
            hashes.iter_mut().zip(series.bool()?.iter()).for_each(|(hash, value)| cell(hash, value.map(|v| [u8::from(v)])));
        }
        // 0 and -0 are one value.
        DataType::Float64 => {
            hashes.iter_mut().zip(series.f64()?.iter()).for_each(|(hash, value)| cell(hash, value.map(|v| (v + 0.0).to_le_bytes())));
        }
        DataType::Int64 => hashes.iter_mut().zip(series.i64()?.iter()).for_each(|(hash, value)| cell(hash, value.map(i64::to_le_bytes))),
        // Times by their count of units (prep writes milliseconds).
        DataType::Datetime(_, _) => chain(hashes, &series.to_physical_repr())?,
        // No other type comes out of prep; any would be hashed by its text.
        _ => chain(hashes, &series.cast(&DataType::String)?)?,
    }
    Ok(())
}

/// Chains one cell's bytes (none when it is missing) into its row's hash.
fn cell(hash: &mut u64, bytes: Option<impl AsRef<[u8]>>) {
    *hash = match bytes {
        Some(bytes) => xxh3_64_with_seed(bytes.as_ref(), *hash),
        None => xxh3_64_with_seed(&[], *hash ^ MISSING),
    }
}

/// The bucket of `buckets` whose range of hashes holds `hash`: the hashes cut into equal ranges,
/// in order, so a bucket is a range of hashes whatever the number of buckets.
pub(crate) fn bucket_of(hash: u64, buckets: usize) -> usize {
    ((u128::from(hash) * buckets as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DataFrame {
        let time =
            Series::new("t".into(), [Some(1_000i64), None, Some(1_000)]).cast(&DataType::Datetime(TimeUnit::Milliseconds, None)).unwrap();
        DataFrame::new(
            3,
            vec![
                Series::new("s".into(), [Some("a"), Some(""), Some("a")]).into(),
                Series::new("x".into(), [Some(-0.0f64), Some(1.5), Some(0.0)]).into(),
                Series::new("n".into(), [Some(7i64), Some(7), Some(7)]).into(),
                Series::new("b".into(), [Some(true), None, Some(true)]).into(),
                time.into(),
            ],
        )
        .unwrap()
    }

    fn hashes(table: &DataFrame) -> Vec<u64> {
        stable_row_hashes(&table.columns().iter().collect::<Vec<_>>(), table.height()).unwrap()
    }

    #[test]
    fn equal_rows_hash_alike_and_the_hash_never_changes() {
        let hashes = hashes(&table());
        assert_eq!(hashes[0], hashes[2], "-0 and 0 are one value");
        assert_ne!(hashes[0], hashes[1]);
        // Pinned: a change here moves rows between buckets of batches already written.
        assert_eq!(hashes[..2], [16_086_777_542_941_413_046, 14_373_703_313_414_709_768]);
    }

    #[test]
    fn a_row_hash_is_xxh3_chained_over_its_cells() {
        let row = DataFrame::new(1, vec![Series::new("s".into(), ["a"]).into(), Series::new("n".into(), [7i64]).into()]).unwrap();
        let expected = xxh3_64_with_seed(&7i64.to_le_bytes(), xxh3_64_with_seed(b"a", START));
        assert_eq!(hashes(&row), [expected]);
    }

    #[test]
    fn a_missing_cell_differs_from_an_empty_text() {
        let column = |values: [Option<&str>; 2]| DataFrame::new(2, vec![Series::new("s".into(), values).into()]).unwrap();
        let (empty, missing) = (hashes(&column([Some(""), Some("")])), hashes(&column([None, None])));
        assert_ne!(empty[0], missing[0]);
    }

    #[test]
    fn buckets_are_ranges_of_hashes_in_order() {
        assert_eq!([0, u64::MAX / 3, u64::MAX / 3 + 1, u64::MAX].map(|h| bucket_of(h, 3)), [0, 0, 1, 2]);
        assert_eq!(bucket_of(u64::MAX, 1), 0);
        let hashes: Vec<u64> = (0..1000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let buckets: Vec<usize> = hashes.iter().map(|&h| bucket_of(h, 7)).collect();
        let mut by_hash: Vec<(u64, usize)> = hashes.into_iter().zip(buckets).collect();
        by_hash.sort_unstable();
        assert!(by_hash.windows(2).all(|pair| pair[0].1 <= pair[1].1));
    }
}
