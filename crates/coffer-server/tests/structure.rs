//! The shape of the code, checked so it stays true: no two files of the
//! server crate import each other (directly or around a circle), and no
//! source file in the workspace grows past 800 lines unless it says why at
//! its top (a `//! Long file: <reason>` line among its first 20).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` or `src/a/b/mod.rs` → `["a", "b"]`; `src/lib.rs` → `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments and its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `use a::{b::C, d::{E, F}}` → `a::b::C`, `a::d::E`, `a::d::F`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .flat_map(|i| expand(&format!("{prefix}{}", i.trim())))
        .collect()
}

/// Every `crate::…`/`super::…` path a file's code names, made absolute.
fn paths_named(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    for stmt in code.split(';') {
        let s = stmt.trim();
        let s = s.strip_prefix("pub ").unwrap_or(s);
        let s = s.strip_prefix("pub(crate) ").unwrap_or(s);
        if let Some(tree) = s.strip_prefix("use ") {
            raw.extend(expand(tree));
        }
    }
    // Paths written inline in code, too.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            let before = at.checked_sub(1).map(|b| bytes[b] as char);
            if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                let end = code[at..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .map_or(code.len(), |e| at + e);
                raw.push(code[at..end].to_owned());
            }
            from = at + start.len();
        }
    }
    let raw: BTreeSet<String> = raw
        .into_iter()
        .map(|p| p.split(" as ").next().unwrap_or(&p).trim().to_owned())
        .collect();
    raw.into_iter()
        .filter_map(|p| {
            let mut segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
            let mut abs: Vec<String> = match segs.first().copied() {
                Some("crate") => {
                    segs.remove(0);
                    Vec::new()
                }
                Some("super") => {
                    let mut m = module.to_vec();
                    while segs.first() == Some(&"super") {
                        segs.remove(0);
                        m.pop();
                    }
                    m
                }
                _ => return None,
            };
            abs.extend(segs.iter().map(|s| (*s).to_owned()));
            Some(abs)
        })
        .collect()
}

#[test]
fn the_server_crate_has_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(&src, f), f.clone()))
        .collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        for path in paths_named(module, &code(&text)) {
            // The longest prefix of the path that is a module file.
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p))
                .unwrap_or_default();
            if &target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    // Strongly connected components (Tarjan).
    struct Walk<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        on_stack: BTreeSet<Vec<String>>,
        cycles: Vec<Vec<String>>,
    }
    impl Walk<'_> {
        fn visit(&mut self, v: &Vec<String>) {
            let i = self.index.len();
            self.index.insert(v.clone(), i);
            self.low.insert(v.clone(), i);
            self.stack.push(v.clone());
            self.on_stack.insert(v.clone());
            for w in self.edges.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(&w) {
                    self.visit(&w);
                    let l = self.low[v].min(self.low[&w]);
                    self.low.insert(v.clone(), l);
                } else if self.on_stack.contains(&w) {
                    let l = self.low[v].min(self.index[&w]);
                    self.low.insert(v.clone(), l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(&w);
                    let done = &w == v;
                    scc.push(if w.is_empty() {
                        "lib".into()
                    } else {
                        w.join("::")
                    });
                    if done {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.cycles.push(scc);
                }
            }
        }
    }
    let mut walk = Walk {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        cycles: Vec::new(),
    };
    for m in modules.keys() {
        if !walk.index.contains_key(m) {
            walk.visit(m);
        }
    }
    assert!(
        walk.cycles.is_empty(),
        "files that import each other (directly or around a circle): {:?}",
        walk.cycles
    );
    assert!(
        edges.len() > 20,
        "the scan found too few imports: {edges:?}"
    );
}

#[test]
fn no_source_file_grows_past_800_lines_without_saying_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mut long = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines = text.lines().count();
        let explained = text
            .lines()
            .take(20)
            .any(|l| l.trim_start().starts_with("//! Long file:"));
        if lines > MAX_LINES && !explained {
            long.push(format!("{} ({lines} lines)", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "split these, or say at their top why they are long (`//! Long file: <reason>`): {long:#?}"
    );
}

#[test]
fn grouped_imports_expand() {
    assert_eq!(
        expand("crate::a::{b::C, d::{E, F}}"),
        ["crate::a::b::C", "crate::a::d::E", "crate::a::d::F"]
    );
    let m = vec!["jobs".to_owned(), "backup".to_owned()];
    assert_eq!(
        paths_named(
            &m,
            "use super::registry::Jobs;\nlet x = crate::state::Shared;"
        ),
        [
            vec!["state".to_owned(), "Shared".into()],
            vec!["jobs".to_owned(), "registry".into(), "Jobs".into()],
        ]
    );
}
