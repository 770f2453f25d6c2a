//! The map a newcomer reads must match the code: every module is named in
//! `lib.rs`'s one-line list and in the README's design map, and the
//! modules' imports form no cycle (each file's imports say what it is
//! about; nothing imports back what uses it).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as (module path, source before its tests).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            modules(&path, &format!("{prefix}{stem}::"), out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || stem == "lib" {
            continue;
        }
        let name = if stem == "mod" {
            prefix.trim_end_matches("::").to_owned()
        } else {
            format!("{prefix}{stem}")
        };
        let text = fs::read_to_string(&path).unwrap();
        // Code only: before its tests, without comments (a doc link is a
        // pointer for the reader, not a dependency).
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        out.insert(name, code);
    }
}

/// The modules `name`'s code names through `crate::…` (a child naming its
/// parent with `super::` is how Rust nests, not a cycle).
fn imports(code: &str, known: &BTreeSet<String>, name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let path: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        let target = (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|m| known.contains(m));
        if let Some(target) = target {
            let is_ancestor = name.starts_with(&format!("{target}::"));
            if target != name && !is_ancestor {
                out.insert(target);
            }
        }
    }
    out
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let mut found = BTreeMap::new();
    modules(&root().join("src"), "", &mut found);
    let known: BTreeSet<String> = found.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = found
        .iter()
        .map(|(name, code)| (name.clone(), imports(code, &known, name)))
        .collect();
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) {
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in &graph[n] {
            match state.get(m.as_str()) {
                Some(1) => panic!("import cycle: {} -> {m}", path.join(" -> ")),
                Some(_) => {}
                None => visit(m, graph, state, path),
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n) {
            visit(n, &graph, &mut state, &mut Vec::new());
        }
    }
    // The hub is about events and clients: no HTTP, no sockets, no Node.
    let http = [
        "routes",
        "accept",
        "direct",
        "http1",
        "body",
        "connection",
        "server",
        "binding",
    ];
    for (name, deps) in graph.iter().filter(|(n, _)| n.starts_with("hub")) {
        for dep in deps {
            assert!(
                !http
                    .iter()
                    .any(|h| dep == h || dep.starts_with(&format!("{h}::"))),
                "{name} imports {dep}"
            );
        }
    }
}

#[test]
fn lib_rs_and_the_readme_name_every_top_level_module() {
    let lib = fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let design = readme
        .split("## Design")
        .nth(1)
        .and_then(|d| d.split("```").nth(1))
        .expect("the README's design map");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 20);
    for module in declared {
        assert!(
            lib.contains(&format!("[`{module}`]")),
            "lib.rs's list does not name {module}"
        );
        let file = format!("{module}.rs");
        let dir = format!("{module}/");
        assert!(
            design.contains(&file) || design.contains(&dir),
            "the README's design map does not name {module}"
        );
    }
}
