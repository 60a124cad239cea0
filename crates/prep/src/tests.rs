use super::*;
use mlops_core::Column as CoreColumn;
use std::collections::HashSet;

const SPEC: &str = r#"
name = "toy"
ignore = ["leak"]
[target]
column = "y"
task = "regression"
[[columns]]
name = "n"
type = "integer"
min = 0
max = 10
[[columns]]
name = "x"
type = "float"
nullable = true
[[columns]]
name = "c"
type = "categorical"
categories = ["a", "b"]
[[columns]]
name = "flag"
type = "boolean"
[[columns]]
name = "when"
type = "datetime"
format = "%Y-%m-%d"
[[columns]]
name = "leak"
type = "float"
[[columns]]
name = "y"
type = "float"
[models.lm]
kind = "linear"
"#;

fn spec() -> Spec {
    Spec::parse(SPEC, "toy").unwrap()
}

fn reasons(parsed: &Parsed) -> Vec<(u32, String)> {
    let rows = parsed.quarantined.column(ROW_COLUMN).unwrap().cast(&DataType::UInt32).unwrap();
    let reasons = parsed.quarantined.column(REASON_COLUMN).unwrap().clone();
    rows.u32().unwrap().iter().zip(reasons.str().unwrap().iter()).map(|(r, s)| (r.unwrap(), s.unwrap().to_string())).collect()
}

#[test]
fn valid_rows_are_typed_and_bad_rows_quarantined_with_their_reason() {
    let csv = "n,x,c,flag,when,leak,y\n\
               1, 2.5 ,a,yes,2024-01-02,9,1.0\n\
               2,,b,0,2024-01-03,9,2.0\n\
               x3,1,a,1,2024-01-04,9,3.0\n\
               11,1,z,maybe,someday,9,\n\
               4,1,a,true,2024-01-05,9,4.0\n";
    let parsed = parse_csv("raw/toy/a.csv", csv.as_bytes(), &spec()).unwrap();
    assert_eq!(parsed.rows, 5);
    assert_eq!(parsed.valid.height(), 3);
    assert_eq!(parsed.valid.get_column_names().iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["n", "x", "c", "flag", "when", "y"]);
    let reasons = reasons(&parsed);
    assert_eq!(reasons[0], (3, "n: 'x3' is not an integer".to_string()));
    let (row, reason) = &reasons[1];
    assert_eq!(*row, 4);
    for part in [
        "n: 11 is above the maximum 10",
        "c: 'z' is not one of the categories (a, b)",
        "flag: 'maybe' is not a boolean",
        "when: 'someday' does not match",
        "y: missing value",
    ] {
        assert!(reason.contains(part), "{reason:?} lacks {part:?}");
    }
    let quarantined_leak = parsed.quarantined.column("leak").unwrap();
    assert_eq!(quarantined_leak.str().unwrap().get(0), Some("9"), "quarantined rows keep every raw column");
    let frame = to_frame(parsed.valid.clone(), &spec()).unwrap();
    let CoreColumn::Numeric(x) = frame.column("x").unwrap() else { panic!() };
    assert!(x[0] == 2.5 && x[1].is_nan());
    assert_eq!(frame.column("flag"), Some(&CoreColumn::Numeric(vec![1.0, 0.0, 1.0])));
    let CoreColumn::Numeric(when) = frame.column("when").unwrap() else { panic!() };
    assert_eq!(when[0], mlops_core::time::parse_datetime("2024-01-02", "%Y-%m-%d").unwrap());
}

#[test]
fn unusable_files_are_rejected_with_the_file_and_the_problem() {
    let cases: [(&[u8], &str); 6] = [
        (b"", "empty"),
        (b"n,x,c,flag,when,leak,y\n", "no data rows"),
        (b"n,x,c,flag,when,leak,y\n1,2,a,1,2024-01-01,3,\xff\xfe\n", "not UTF-8 text: invalid byte 0xff at line 2, column 22"),
        (b"a,b\n1,2\n", "no column of dataset 'toy'"),
        (b"n,x,c,when,y\n1,2,a,2024-01-01,3\n", "missing column(s): flag"),
        (b"n,n,x,c,flag,when,y\n1,1,2,a,1,2024-01-01,3\n", "repeats column 'n'"),
    ];
    for (bytes, expected) in cases {
        let rejection = parse_csv("raw/toy/bad.csv", bytes, &spec()).unwrap_err();
        assert_eq!(rejection.file, "raw/toy/bad.csv");
        assert!(rejection.reason.contains(expected), "{:?} should contain {expected:?}", rejection.reason);
    }
}

#[test]
fn rows_with_the_wrong_number_of_fields_are_quarantined_alone() {
    let csv = "n,x,c,flag,when,leak,y\n1,2,a,1,2024-01-01,0,1\n2,2,a,1,2024-01-01,0,1,extra\n3,2,a\n4,2,b,0,2024-01-02,0,2\n";
    let parsed = parse_csv("f.csv", csv.as_bytes(), &spec()).unwrap();
    assert_eq!(parsed.valid.height(), 2);
    let reasons = reasons(&parsed);
    assert_eq!(reasons, [(2, "row has 8 fields, the header has 7".to_string()), (3, "row has 3 fields, the header has 7".to_string())]);
    assert_eq!(parsed.quarantined.column(TEXT_COLUMN).unwrap().str().unwrap().get(0), Some("2,2,a,1,2024-01-01,0,1,extra"));
    let valid_n: Vec<i64> = parsed.valid.column("n").unwrap().i64().unwrap().iter().flatten().collect();
    assert_eq!(valid_n, [1, 4]);
}

#[test]
fn merging_removes_duplicates_across_files_and_parquet_round_trips() {
    let a = parse_csv("a.csv", b"n,x,c,flag,when,y\n1,2,a,1,2024-01-01,1\n2,2,a,1,2024-01-01,1\n", &spec()).unwrap();
    let b = parse_csv("b.csv", b"y,n,x,c,flag,when\n1,1,2,a,1,2024-01-01\n5,3,2,b,0,2024-01-02\n", &spec()).unwrap();
    assert!(a.notes.is_empty() && b.notes.is_empty());
    let (mut merged, duplicates) = merge(vec![a.valid, b.valid]).unwrap();
    assert_eq!((merged.height(), duplicates), (3, 1));
    let bytes = to_parquet(&mut merged).unwrap();
    let back = read_parquet(bytes, "mem").unwrap();
    assert!(back.equals_missing(&merged));
}

#[test]
fn duplicates_are_found_across_hash_blocks_with_missing_values_equal() {
    let mut csv = String::from("n,x,c,flag,when,y\n");
    for i in 0..1000 {
        let x = if i % 3 == 0 { "" } else { "2.5" };
        csv += &format!("{},{x},a,1,2024-01-01,{}\n", i % 10, i % 7);
    }
    let parsed = parse_csv("many.csv", csv.as_bytes(), &spec()).unwrap();
    assert_eq!(parsed.valid.height(), 1000);
    let (merged, duplicates) = merge(vec![parsed.valid]).unwrap();
    // The first row of each distinct (n, x missing, y), in order.
    let mut seen = HashSet::new();
    let firsts: Vec<i64> = (0..1000).filter(|i| seen.insert((i % 10, i % 3 == 0, i % 7))).collect();
    assert_eq!((merged.height(), duplicates), (firsts.len(), 1000 - firsts.len()));
    let n: Vec<i64> = merged.column("n").unwrap().i64().unwrap().into_no_null_iter().collect();
    let y: Vec<f64> = merged.column("y").unwrap().f64().unwrap().into_no_null_iter().collect();
    let x_missing: Vec<bool> = merged.column("x").unwrap().f64().unwrap().iter().map(|x| x.is_none()).collect();
    assert_eq!(n, firsts.iter().map(|i| i % 10).collect::<Vec<_>>());
    assert_eq!(y, firsts.iter().map(|i| (i % 7) as f64).collect::<Vec<_>>());
    assert_eq!(x_missing, firsts.iter().map(|i| i % 3 == 0).collect::<Vec<_>>());
}

#[test]
fn init_drafts_a_usable_spec() {
    let csv = "order_id,when,city,amount,note,churned\n\
               17,2024-01-01 08:00:00,paris,10.5,hello there,yes\n\
               18,2024-01-02 09:30:00,lyon,3.0,another note,no\n\
               19,2024-01-03 10:00:00,paris,,third one,no\n\
               20,2024-01-04 23:00:00,paris,7.25,fourth,yes\n";
    let options = infer::InitOptions { name: "orders".into(), target: "churned".into(), time: None, task: None };
    let (spec, notes) = infer::infer_spec("orders.csv", csv.as_bytes(), &options).unwrap();
    assert_eq!(spec.target.task, mlops_core::Task::Binary);
    assert_eq!(spec.id.as_deref(), Some("order_id"));
    assert_eq!(spec.time.as_ref().and_then(|t| t.column.as_deref()), Some("when"));
    assert_eq!(spec.column("when").unwrap().format.as_deref(), Some("%Y-%m-%d %H:%M:%S"));
    assert_eq!(spec.column("city").unwrap().kind, ColumnType::Categorical);
    assert!(spec.column("amount").unwrap().nullable);
    assert_eq!(spec.column("note").unwrap().kind, ColumnType::String);
    assert_eq!(spec.feature_columns().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["city", "amount"]);
    assert!(notes.iter().any(|n| n.contains("order_id")));
    let error = infer::infer_spec("orders.csv", csv.as_bytes(), &infer::InitOptions { target: "nope".into(), ..options }).unwrap_err();
    assert!(error.reason.contains("'nope'"));
}

#[test]
fn a_blank_line_and_a_ragged_row_cost_only_the_ragged_row() {
    let csv = "n,x,c,flag,when,leak,y\n1,2,a,1,2024-01-01,0,1\n\n2,2,a\n4,2,b,0,2024-01-02,0,2\n";
    let parsed = parse_csv("f.csv", csv.as_bytes(), &spec()).unwrap();
    let valid_n: Vec<i64> = parsed.valid.column("n").unwrap().i64().unwrap().iter().flatten().collect();
    assert_eq!(valid_n, [1, 4]);
    assert_eq!(reasons(&parsed), [(2, "row has 3 fields, the header has 7".to_string())]);
}

#[test]
fn a_header_with_escaped_quotes_is_read() {
    let spec = Spec::parse(&SPEC.replace("name = \"x\"", "name = 'x \"mm\"'"), "toy").unwrap();
    let csv = "n,\"x \"\"mm\"\"\",c,flag,when,leak,y\n1,2,a,1,2024-01-01,0,1\n";
    let parsed = parse_csv("q.csv", csv.as_bytes(), &spec).unwrap();
    assert_eq!(parsed.valid.height(), 1, "{:?}", parsed.quarantined);
    assert_eq!(parsed.valid.column("x \"mm\"").unwrap().f64().unwrap().get(0), Some(2.0));
}

#[test]
fn integers_that_do_not_fit_are_quarantined_not_saturated() {
    let csv =
        "n,x,c,flag,when,y\n99999999999999999999,1,a,1,2024-01-01,1\n1e2,1,a,1,2024-01-01,1\n3,1,a,1,9999-12-31,1\n5,1,a,1,2024-01-01,1\n";
    let parsed = parse_csv("i.csv", csv.as_bytes(), &spec()).unwrap();
    assert_eq!(
        reasons(&parsed),
        [
            (1, "n: '99999999999999999999' is out of the integer range (±2^53)".to_string()),
            (2, "n: '1e2' is not an integer".to_string()),
            (3, "when: '9999-12-31' is outside the supported datetime range".to_string()),
        ]
    );
    assert_eq!(parsed.valid.column("n").unwrap().i64().unwrap().get(0), Some(5));
}

#[test]
fn init_reads_a_header_with_escaped_quotes_and_reserved_names_are_not_read() {
    let csv = "\"size \"\"cm\"\"\",y\n1,2\n2,4\n1,3\n2,8\n1,2.5\n2,3.5\n";
    let options = infer::InitOptions { name: "q".into(), target: "y".into(), time: None, task: None };
    let (spec, _) = infer::infer_spec("q.csv", csv.as_bytes(), &options).unwrap();
    assert!(spec.column("size \"cm\"").is_some(), "{:?}", spec.columns);
    // A raw column named like a quarantine field is not read; the rest of the file is.
    let csv = b"n,x,c,flag,when,_row,y\n1,2,a,1,2024-01-01,3,1\nx,2,a,1,2024-01-01,4,1\n2,2,b,0,2024-01-02,5\n";
    let parsed = parse_csv("r.csv", csv, &super::tests::spec()).unwrap();
    assert_eq!(parsed.valid.height(), 1);
    assert_eq!(reasons(&parsed), [(2, "n: 'x' is not an integer".to_string()), (3, "row has 6 fields, the header has 7".to_string())]);
    assert!(parsed.notes.iter().any(|n| n.contains("not read: _row")), "{:?}", parsed.notes);
}

#[test]
fn init_reads_rfc3339_times_and_keeps_many_level_categoricals_as_features() {
    // 300 rows: an RFC 3339 time (Z, offsets, fractions), a 150-level station that repeats, a
    // 3-level colour, an identifier unique per row, and free text.
    let mut csv = String::from("ride,started,station,colour,comment,minutes\n");
    for i in 0..300 {
        let time = match i % 3 {
            0 => format!("2013-01-{:02}T10:{:02}:00Z", 1 + i / 20, i % 60),
            1 => format!("2013-01-{:02}T11:{:02}:00.250+01:00", 1 + i / 20, i % 60),
            _ => format!("2013-01-{:02} 05:{:02}:07-05:00", 1 + i / 20, i % 60),
        };
        let colour = ["red", "green", "blue"][i % 3];
        csv.push_str(&format!("r{i},{time},station {},{colour},said {i} things,{}\n", i % 150, 3 + i % 17));
    }
    let options = infer::InitOptions { name: "rides".into(), target: "minutes".into(), time: Some("started".into()), task: None };
    let (spec, notes) = infer::infer_spec("rides.csv", csv.as_bytes(), &options).unwrap();
    assert_eq!(spec.column("started").unwrap().format.as_deref(), Some(mlops_core::time::RFC3339));
    let station = spec.column("station").unwrap();
    assert_eq!((station.kind, station.categories.as_ref()), (ColumnType::Categorical, None), "150 levels: an open categorical");
    assert_eq!(spec.column("colour").unwrap().categories.as_ref().map(Vec::len), Some(3));
    assert_eq!(spec.id.as_deref(), Some("ride"));
    assert_eq!(spec.column("comment").unwrap().kind, ColumnType::String);
    assert_eq!(spec.feature_columns().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["station", "colour"]);
    assert!(notes.iter().any(|n| n.contains("'station' is categorical with 150 levels")), "{notes:?}");
    // Prep reads every form, and an offset gives the same instant as Z.
    let parsed = parse_csv("rides.csv", csv.as_bytes(), &spec).unwrap();
    assert_eq!(parsed.valid.height(), 300, "{:?}", parsed.quarantined);
    let frame = to_frame(parsed.valid.clone(), &spec).unwrap();
    let CoreColumn::Numeric(started) = frame.column("started").unwrap() else { panic!() };
    let ten = mlops_core::time::parse_datetime("2013-01-01T10:00:00Z", mlops_core::time::RFC3339).unwrap();
    assert_eq!(started[..3], [ten, ten + 60.0 + 0.25, ten + 120.0 + 7.0]);
}

#[test]
fn init_reads_unix_times_in_seconds_and_milliseconds_when_named_as_the_time() {
    for (scale, format) in [(1, mlops_core::time::UNIX_SECONDS), (1000, mlops_core::time::UNIX_MILLISECONDS)] {
        let mut csv = String::from("at,x,y\n");
        for i in 0..40u64 {
            csv.push_str(&format!("{},{},{}\n", (1_357_034_400 + i * 3600) * scale, i % 7, i % 5));
        }
        let options = infer::InitOptions { name: "epoch".into(), target: "y".into(), time: Some("at".into()), task: None };
        let (spec, notes) = infer::infer_spec("epoch.csv", csv.as_bytes(), &options).unwrap();
        let at = spec.column("at").unwrap();
        assert_eq!((at.kind, at.format.as_deref()), (ColumnType::Datetime, Some(format)));
        assert!(notes.iter().any(|n| n.contains("Unix times")), "{notes:?}");
        assert_eq!(spec.features.time_parts, [mlops_core::TimePart::Hour, mlops_core::TimePart::Weekday]);
        let frame = to_frame(parse_csv("epoch.csv", csv.as_bytes(), &spec).unwrap().valid, &spec).unwrap();
        let CoreColumn::Numeric(at) = frame.column("at").unwrap() else { panic!() };
        assert_eq!(at[1], 1_357_034_400.0 + 3600.0);
    }
    // A number that is not an epoch is still refused as the time, with what was tried.
    let options = infer::InitOptions { name: "n".into(), target: "y".into(), time: Some("x".into()), task: None };
    let error = infer::infer_spec("n.csv", b"x,y\n1,2\n2,3\n3,4\n", &options).unwrap_err();
    assert!(error.reason.contains("'x' does not look like a datetime") && error.reason.contains("Unix times"), "{}", error.reason);
}

#[test]
fn pieces_are_cut_after_whole_records_outside_quotes() {
    let body = b"1,\"a\nb\",2\n3,\"c\"\"\n\",4\n5,d,6\n";
    // Every cut lands after a line end that closes a record.
    for size in 1..body.len() + 2 {
        let ends = piece_ends(body, size);
        assert_eq!(ends.last(), Some(&body.len()));
        assert!(ends.iter().all(|&end| [10, 21, 27].contains(&end)), "{size}: {ends:?}");
        assert!(ends.is_sorted());
    }
    assert_eq!(piece_ends(body, 1), [10, 21, 27]);
    assert_eq!(piece_ends(body, 100), [27]);
}

/// A file of 200 rows with bad values, ragged rows and quoted fields that hold line breaks and
/// quotes, and a spec that reads its text column as free text.
fn awkward_file() -> (Spec, String) {
    let spec = Spec::parse(&SPEC.replace("type = \"categorical\"\ncategories = [\"a\", \"b\"]", "type = \"string\""), "toy").unwrap();
    let mut csv = String::from("n,x,c,flag,when,leak,y\n");
    for i in 0..200 {
        match i % 17 {
            3 => csv.push_str("x3,1,a,1,2024-01-04,9,3.0\n"),
            5 => csv.push_str("4,1,a,true\n"),
            7 => csv.push_str(&format!("{},2,\"two\nlines, and \"\"quotes\"\"\",0,2024-01-03,9,{i}\n", i % 10)),
            _ => csv.push_str(&format!("{},{i}.5,b,yes,2024-01-02,9,{i}\n", i % 10)),
        }
    }
    (spec, csv)
}

#[test]
fn a_file_read_in_pieces_gives_the_rows_reasons_and_row_numbers_of_one_piece() {
    let (spec, csv) = awkward_file();
    let head = Head::read("a.csv", csv.as_bytes(), csv.len() as u64, &spec).unwrap();
    let records = &csv.as_bytes()[head.body_start as usize..];
    let whole = parse_csv("a.csv", csv.as_bytes(), &spec).unwrap();
    for piece_bytes in [1, 64, 500] {
        let pieces = combine("a.csv", vec![parse_in_pieces("a.csv", &head, records, &spec, piece_bytes).unwrap()]).unwrap();
        assert_eq!(pieces.rows, 200);
        assert!(pieces.valid.equals_missing(&whole.valid), "{piece_bytes}-byte pieces");
        assert!(pieces.quarantined.equals_missing(&whole.quarantined), "{piece_bytes}-byte pieces");
    }
    assert_eq!(whole.valid.height(), 200 - 12 - 12);
    assert_eq!(reasons(&whole)[..2], [(4, "n: 'x3' is not an integer".to_string()), (6, "row has 4 fields, the header has 7".to_string())]);
    let texts = whole.valid.column("c").unwrap().str().unwrap().iter().filter(|c| c.is_some_and(|c| c.contains('\n'))).count();
    assert_eq!(texts, 12, "quoted line breaks stay inside their field");
}

/// Shards of `shard_bytes` of `csv`, each read from a window of the file as a store would give
/// it; `None` when a cut fell inside a quoted field (the caller reads the file whole).
fn read_in_shards(csv: &str, spec: &Spec, shard_bytes: u64) -> Option<Result<Parsed, Rejection>> {
    let bytes = csv.as_bytes();
    let size = bytes.len() as u64;
    let head = Head::read("a.csv", bytes, size, spec).unwrap();
    let of = size.div_ceil(shard_bytes) as usize;
    let mut parts = Vec::new();
    let mut quotes = Vec::new();
    for index in 0..of {
        let start = index as u64 * shard_bytes;
        let shard = Shard { file: "a.csv".into(), index, of, start, end: (start + shard_bytes).min(size), file_size: size };
        let window = shard.window();
        let (first, last) = record_bounds(&bytes[window.start as usize..window.end as usize], window.start, &shard, head.body_start)
            .or_else(|| record_bounds(&bytes[window.start as usize..], window.start, &shard, head.body_start))
            .unwrap();
        let records = &bytes[first as usize..last as usize];
        quotes.push(super::quotes(records));
        parts.push(parse_records("a.csv", &head, records, spec));
    }
    cuts_outside_quotes(&quotes).then(|| combine("a.csv", parts.into_iter().map(Result::unwrap).collect()))
}

#[test]
fn shards_put_back_together_give_the_parse_of_the_whole_file_or_are_refused() {
    let (spec, csv) = awkward_file();
    let whole = parse_csv("a.csv", csv.as_bytes(), &spec).unwrap();
    let (mut agreed, mut refused) = (0, 0);
    for shard_bytes in [7, 11, 19, 29, 41, 64, 100, 333, 1000, 5000, 1 << 20] {
        match read_in_shards(&csv, &spec, shard_bytes) {
            Some(combined) => {
                let combined = combined.unwrap();
                assert_eq!(combined.rows, 200, "{shard_bytes}-byte shards");
                assert!(combined.valid.equals_missing(&whole.valid), "{shard_bytes}-byte shards");
                assert!(combined.quarantined.equals_missing(&whole.quarantined), "{shard_bytes}-byte shards: {:?}", combined.quarantined);
                agreed += 1;
            }
            None => refused += 1,
        }
    }
    // Small shards cut some quoted field; one shard never does.
    assert!(agreed >= 3 && refused >= 1, "{agreed} agreed, {refused} refused");
    // Without quoted line breaks every cut is safe.
    let plain: String = csv.lines().filter(|line| !line.contains('"')).map(|line| format!("{line}\n")).collect();
    let whole = parse_csv("a.csv", plain.as_bytes(), &spec).unwrap();
    for shard_bytes in [3, 7, 13, 29, 64, 200] {
        let combined = read_in_shards(&plain, &spec, shard_bytes).expect("no quotes, no refusal").unwrap();
        assert!(combined.quarantined.equals_missing(&whole.quarantined), "{shard_bytes}-byte shards");
        assert!(combined.valid.equals_missing(&whole.valid), "{shard_bytes}-byte shards");
    }
}

#[test]
fn a_file_is_cut_in_whole_hash_chunks_and_records_start_after_line_ends() {
    let shards = cut_file("f.csv", 5 << 20, 2 << 20);
    assert_eq!(shards.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(), [(0, 2 << 20), (2 << 20, 4 << 20), (4 << 20, 5 << 20)]);
    assert!(shards.iter().all(|s| s.of == 3));
    assert_eq!(cut_file("f.csv", 0, 1).len(), 1, "an empty file is one shard");
    assert_eq!(cut_file("f.csv", 10, 1)[0].end, 10, "shards are whole chunks: a small file is one");
    let file = b"h\nab\ncd\n";
    let shard = |start, end| Shard { file: "f".into(), index: 0, of: 1, start, end, file_size: 8 };
    let bounds = |start, end| record_bounds(file, 0, &shard(start, end), 2);
    assert_eq!(bounds(0, 8), Some((2, 8)));
    assert_eq!(bounds(0, 3), Some((2, 5)), "the line that holds the end is the shard's");
    assert_eq!(bounds(3, 8), Some((5, 8)), "a shard that starts inside a line starts after it");
    assert_eq!(bounds(5, 8), Some((5, 8)), "a shard that starts on a line start keeps it");
    assert_eq!(bounds(0, 1), Some((2, 2)), "a shard inside the header has no records");
    assert_eq!(record_bounds(&file[..4], 0, &shard(0, 3), 2), None, "a window that stops inside the last line asks for more");
    assert!(cuts_outside_quotes(&[2, 2, 1]) && !cuts_outside_quotes(&[1, 1]));
}

#[test]
fn a_bad_byte_is_named_at_its_line_in_the_file() {
    let mut csv = b"n,x,c,flag,when,leak,y\n1,1,a,1,2024-01-04,9,3.0\n".to_vec();
    csv.extend_from_slice(b"2,1,\xff,1,2024-01-04,9,3.0\n");
    let rejection = parse_csv("a.csv", &csv, &spec()).unwrap_err();
    assert_eq!(rejection.reason, "not UTF-8 text: invalid byte 0xff at line 3, column 5");
    let problem = ShardProblem::NotUtf8 { byte: 0xff, line: 2, column: 1 };
    assert_eq!(problem.rejection("a.csv", 10).reason, "not UTF-8 text: invalid byte 0xff at line 12, column 1");
}
