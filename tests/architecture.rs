//! The module structure holds: no two modules of a crate import each other, directly or through
//! others (crates cannot form circles: cargo refuses them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::harness::project;

/// For each top-level module of a crate's `src/`, the other top-level modules its non-test code
/// names through `crate::` paths (`use crate::a::B`, `crate::a::f()`, `use crate::{a::B, c}`).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if first == "lib" || first == "main" || relative.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Code only: not the tests, not the comments (a doc link is not an import).
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let edges = graph.entry(first.clone()).or_default();
        for target in crate_references(&code) {
            if target != first {
                edges.insert(target);
            }
        }
    }
    graph
}

/// The modules named right after `crate::`, and inside `use crate::{...}` groups.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let word = |text: &str| text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|item| word(item.trim())).filter(|w| !w.is_empty()));
        } else {
            names.insert(word(rest));
        }
    }
    names.retain(|name| name.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    names
}

/// A circle through `graph`, if there is one, as the modules along it.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let mut crates: Vec<_> = std::fs::read_dir(project().join("crates")).unwrap().map(|e| e.unwrap().path().join("src")).collect();
    crates.push(project().join("src"));
    for src in crates {
        let graph = module_graph(&src);
        assert!(graph.len() > 1 || !src.ends_with("core/src"), "the module graph of {} was not read", src.display());
        if let Some(circle) = find_circle(&graph) {
            panic!("{}: modules import each other: {}", src.display(), circle.join(" → "));
        }
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("spec", "models"), ("models", "time"), ("time", "spec"), ("cells", "spec")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), BTreeSet::from([b.to_string()])))
        .collect();
    assert_eq!(find_circle(&graph), Some(vec!["spec".into(), "models".into(), "time".into(), "spec".into()]));
    assert_eq!(crate_references("use crate::{a::B, c};\nlet x = crate::d::f();"), BTreeSet::from(["a".into(), "c".into(), "d".into()]));
}
