//! The layers of `src/` as `docs/ARCHITECTURE.md` ("Layers") states them, checked against the
//! code: every top-level module's `crate::…` references are read from its sources, and must be
//! exactly the dependencies its row of the table allows (a module that stops using one must leave
//! the table too), and the allowed dependencies must never form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_module_graph_is_the_documented_one_and_has_no_cycle() {
    let code = dependencies_in_code(&root().join("src"));
    let documented = layers_table(&std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap());
    let modules: BTreeSet<&String> = code.keys().collect();
    let rows: BTreeSet<&String> = documented.keys().collect();
    assert_eq!(modules, rows, "every top-level module of src/ has one row in the Layers table, and no other row");
    let mut wrong = Vec::new();
    for (module, uses) in &code {
        let allowed = &documented[module];
        for used in uses.difference(allowed) {
            wrong.push(format!("`{module}` uses `{used}`, which its row does not allow"));
        }
        for unused in allowed.difference(uses) {
            wrong.push(format!("`{module}`'s row allows `{unused}`, which it does not use"));
        }
    }
    assert!(wrong.is_empty(), "docs/ARCHITECTURE.md (Layers) and the code disagree:\n{}", wrong.join("\n"));
    if let Some(cycle) = find_cycle(&documented) {
        panic!("the modules depend on each other in a circle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_reader_sees_references_in_code_only() {
    let source = r##"
        use crate::{domain::Role, store::{self, Store}};
        // crate::http in a comment
        /* crate::app in a block comment */
        let s = "crate::cli in a string";
        let r = r#"crate::seed in a raw string"#;
        fn f() -> crate::error::AppResult<()> { $crate::jobs::x() }
    "##;
    let found = references(source);
    assert_eq!(found, BTreeSet::from(["domain".to_owned(), "store".to_owned(), "error".to_owned()]));
}

#[test]
fn a_cycle_is_found() {
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert!(find_cycle(&graph).is_some_and(|cycle| cycle.len() == 4));
    let acyclic: Graph = [("a", "b"), ("b", "c")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert_eq!(find_cycle(&acyclic), None);
}

/// Each top-level module (a file or folder of `src/` other than `lib.rs` and `main.rs`) and the
/// other top-level modules its sources name.
fn dependencies_in_code(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let is_module =
            path.is_dir() || (path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main");
        if is_module {
            let mut uses = BTreeSet::new();
            for file in rust_files(&path) {
                uses.extend(references(&std::fs::read_to_string(file).unwrap()));
            }
            uses.remove(&name);
            graph.insert(name, uses);
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|used| modules.contains(used));
    }
    graph
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The first path segment after every `crate::` in code (not in comments or string literals),
/// including each item of a `use crate::{…}` group.
fn references(source: &str) -> BTreeSet<String> {
    let code = without_comments_and_strings(source);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let macro_crate = rest[..at].ends_with('$');
        let boundary = rest[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        rest = &rest[at + "crate::".len()..];
        if macro_crate || !boundary {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(leading_identifier(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.extend(leading_identifier(&item));
        } else {
            found.extend(leading_identifier(rest));
        }
    }
    found
}

fn leading_identifier(text: &str) -> Option<String> {
    let identifier: String = text.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!identifier.is_empty()).then_some(identifier)
}

/// The source with comments and the contents of string literals blanked out, so that only code
/// is searched.
fn without_comments_and_strings(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match chars[i] {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            'r' if (next == Some('"') || next == Some('#'))
                && i.checked_sub(1).is_none_or(|p| !(chars[p].is_alphanumeric() || chars[p] == '_')) =>
            {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push(chars[i]);
                    i += 1;
                    continue;
                }
                i += hashes + 2;
                let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                while i < chars.len() && !chars[i..].iter().take(closing.len()).copied().eq(closing.chars()) {
                    i += 1;
                }
                i += closing.len();
                out.push_str("\"\"");
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A character literal (not a lifetime): skip it, so that '"' opens no string.
            '\'' if chars.get(i + 2) == Some(&'\'') || (next == Some('\\') && chars.get(i + 3) == Some(&'\'')) => {
                i += if next == Some('\\') { 4 } else { 3 };
                out.push_str("' '");
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The rows of the "Layers" table: `| `module` | … | `dependency`, … |` (`—` for none).
fn layers_table(markdown: &str) -> Graph {
    let section = markdown.split("\n## Layers").nth(1).expect("docs/ARCHITECTURE.md has a Layers section");
    let section = section.split("\n## ").next().unwrap();
    let mut graph = Graph::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let module = cells[0].trim_matches('`').to_owned();
        let allowed = cells.last().unwrap().split(',').map(|d| d.trim().trim_matches('`').to_owned());
        let allowed: BTreeSet<String> = allowed.filter(|d| !d.is_empty() && d != "—").collect();
        assert!(graph.insert(module.clone(), allowed).is_none(), "`{module}` has two rows");
    }
    graph
}

/// A path that comes back to where it started, if the graph has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
