//! Structural rules of the workspace, checked on its source (as
//! rust-analyzer's tidy tests do): short functions, no import cycle between
//! sibling modules, no fixture names in the product, no SQL in the command
//! line, no JSON values in the run's state, one parse of the plan's SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Functions longer than this many lines are split.
const MAX_FN_LINES: usize = 80;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn sources(krate: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    rust_files(&workspace().join(krate).join("src"), &mut out);
    out.sort();
    out
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string() == "test")
    })
}

/// Every function's name and length, outside `#[cfg(test)]` modules.
#[derive(Default)]
struct Functions(Vec<(String, usize)>);

impl Functions {
    fn add(&mut self, name: &syn::Ident, span: proc_macro2::Span) {
        let lines = span.end().line - span.start().line + 1;
        self.0
            .push((format!("{name} (line {})", span.start().line), lines));
    }
}

impl<'a> Visit<'a> for Functions {
    fn visit_item_mod(&mut self, m: &'a syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'a syn::ItemFn) {
        if !is_cfg_test(&f.attrs) {
            self.add(&f.sig.ident, syn::spanned::Spanned::span(f));
        }
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
        self.add(&f.sig.ident, syn::spanned::Spanned::span(f));
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'a syn::TraitItemFn) {
        if f.default.is_some() {
            self.add(&f.sig.ident, syn::spanned::Spanned::span(f));
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap();
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let mut long = Vec::new();
    for krate in ["supamigrate", "supamigrate-cli", "supamigrate-sandbox"] {
        for path in sources(krate) {
            // The fixture's data tables: one row generator per TMS table.
            if path.ends_with("fixture/tables.rs") {
                continue;
            }
            let mut f = Functions::default();
            f.visit_file(&parse(&path));
            for (name, lines) in f.0 {
                if lines > MAX_FN_LINES {
                    long.push(format!("{}: {name}: {lines} lines", path.display()));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// The module path of a source file (`src/plan/copy.rs` → `plan::copy`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The `crate::…` and `super::…` paths a file names, resolved to absolute
/// module paths.
struct Paths {
    here: Vec<String>,
    found: Vec<Vec<String>>,
}

impl Paths {
    fn resolve(&mut self, segs: Vec<String>) {
        let mut it = segs.into_iter().peekable();
        let mut base: Vec<String> = match it.peek().map(String::as_str) {
            Some("crate") => {
                it.next();
                Vec::new()
            }
            Some("super") => {
                let mut b = self.here.clone();
                while it.peek().map(String::as_str) == Some("super") {
                    it.next();
                    b.pop();
                }
                b
            }
            _ => return,
        };
        base.extend(it);
        self.found.push(base);
    }

    fn use_tree(&mut self, prefix: Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut next = prefix;
                next.push(p.ident.to_string());
                self.use_tree(next, &p.tree);
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix;
                full.push(n.ident.to_string());
                self.resolve(full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix;
                full.push(r.ident.to_string());
                self.resolve(full);
            }
            syn::UseTree::Glob(_) => self.resolve(prefix),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix.clone(), t);
                }
            }
        }
    }
}

impl<'a> Visit<'a> for Paths {
    fn visit_item_mod(&mut self, m: &'a syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
        self.use_tree(Vec::new(), &u.tree);
    }
    fn visit_path(&mut self, p: &'a syn::Path) {
        self.resolve(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
}

/// Sibling-module edges `parent → (from, to)` of one crate.
fn module_edges(krate: &str) -> BTreeMap<Vec<String>, BTreeSet<(String, String)>> {
    let src = workspace().join(krate).join("src");
    let files = sources(krate);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for f in &files {
        let here = module_of(&src, f);
        let mut p = Paths {
            here: here.clone(),
            found: Vec::new(),
        };
        p.visit_file(&parse(f));
        for target in p.found {
            let lcp = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if lcp >= here.len() || lcp >= target.len() {
                continue; // a module and its ancestors or descendants
            }
            let sibling = target[..=lcp].to_vec();
            if !modules.contains(&sibling) {
                continue; // an item, not a module
            }
            edges
                .entry(here[..lcp].to_vec())
                .or_default()
                .insert((here[lcp].clone(), target[lcp].clone()));
        }
    }
    edges
}

fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let next = |n: &str| -> Vec<&String> {
        edges
            .iter()
            .filter(|(a, _)| a == n)
            .map(|(_, b)| b)
            .collect()
    };
    fn dfs<'a>(
        n: &'a String,
        next: &dyn Fn(&str) -> Vec<&'a String>,
        stack: &mut Vec<&'a String>,
        done: &mut BTreeSet<&'a String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut c: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
            c.push(n.clone());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n);
        for m in next(n) {
            if let Some(c) = dfs(m, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for (a, _) in edges {
        if let Some(c) = dfs(a, &next, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_import_cycle_between_sibling_modules() {
    let mut cycles = Vec::new();
    for krate in ["supamigrate", "supamigrate-sandbox", "supamigrate-cli"] {
        for (parent, edges) in module_edges(krate) {
            if let Some(c) = find_cycle(&edges) {
                cycles.push(format!("{krate} {}: {}", parent.join("::"), c.join(" → ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

fn grep(krate: &str, skip: &dyn Fn(&Path) -> bool, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for path in sources(krate) {
        if skip(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            for n in needles {
                if lower.contains(n) {
                    hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    hits
}

#[test]
fn the_product_holds_no_fixture_names() {
    let hits = grep(
        "supamigrate",
        &|_| false,
        &[
            "driver_documents",
            "pod_file_path",
            "tms-",
            "tms_",
            "driver-documents",
            "pod-documents",
        ],
    );
    assert!(
        hits.is_empty(),
        "TMS names in the product crate:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_command_line_runs_no_sql() {
    let manifest = std::fs::read_to_string(workspace().join("supamigrate-cli/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .unwrap_or("");
    assert!(
        !deps.contains("tokio-postgres"),
        "the CLI depends on the driver:\n{deps}"
    );
    let hits = grep(
        "supamigrate-cli",
        &|_| false,
        &[
            "\"select ",
            "\"insert ",
            "\"update ",
            "\"delete ",
            "\"create ",
            "\"alter ",
            ".query(",
            ".execute(",
            "batch_execute",
        ],
    );
    assert!(
        hits.is_empty(),
        "SQL in the CLI crate:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_run_state_and_results_are_typed() {
    // libpg_query returns plpgsql trees as JSON: read there, typed everywhere else.
    let hits = grep(
        "supamigrate",
        &|p| p.ends_with("sql/tree.rs"),
        &["serde_json::value", "serde_json::json!"],
    );
    assert!(
        hits.is_empty(),
        "untyped JSON in the library:\n{}",
        hits.join("\n")
    );
}

#[test]
fn executors_do_not_parse_the_plans_sql_again() {
    let src = workspace().join("supamigrate/src");
    let hits = grep(
        "supamigrate",
        &|p| {
            // verify's checks are the application's own queries, read from a file.
            p.ends_with("verify/checks.rs")
                || !(p.starts_with(src.join("verify"))
                    || p.starts_with(src.join("copy"))
                    || p.ends_with("apply.rs"))
        },
        &["statement::parse", "pg_query::", "sql::split"],
    );
    assert!(
        hits.is_empty(),
        "the plan's SQL parsed again:\n{}",
        hits.join("\n")
    );
}

/// Public functions of `file` (outside `#[cfg(test)]`) and how many
/// `&ConnInfo` parameters each takes.
fn conninfo_params(file: &syn::File) -> Vec<(String, usize)> {
    fn count(sig: &syn::Signature) -> usize {
        sig.inputs
            .iter()
            .filter(|a| match a {
                syn::FnArg::Typed(t) => match &*t.ty {
                    syn::Type::Reference(r) => matches!(&*r.elem, syn::Type::Path(p)
                        if p.path.segments.last().is_some_and(|s| s.ident == "ConnInfo")),
                    _ => false,
                },
                _ => false,
            })
            .count()
    }
    let mut out = Vec::new();
    let mut items: Vec<&syn::Item> = file.items.iter().collect();
    while let Some(item) = items.pop() {
        match item {
            syn::Item::Fn(f) if matches!(f.vis, syn::Visibility::Public(_)) => {
                out.push((f.sig.ident.to_string(), count(&f.sig)));
            }
            syn::Item::Mod(m) if !is_cfg_test(&m.attrs) => {
                if let Some((_, inner)) = &m.content {
                    items.extend(inner.iter());
                }
            }
            _ => {}
        }
    }
    out
}

/// The executors take the one resolved migration (`&Migration`), never the
/// two sides apart: each command resolves them once (`Context::open`).
/// `follow::status` and `follow::abort` read or undo without a plan.
#[test]
fn executors_take_the_migration_not_a_pair_of_connections() {
    let src = workspace().join("supamigrate/src");
    let allowed = ["status", "abort"];
    let mut found = Vec::new();
    for f in sources("supamigrate") {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let executor = ["copy/", "storage/", "verify/", "follow/"]
            .iter()
            .any(|d| rel.starts_with(d))
            || rel == "apply.rs"
            || rel == "provision.rs";
        if !executor {
            continue;
        }
        for (name, n) in conninfo_params(&parse(&f)) {
            if n >= 2 && !allowed.contains(&name.as_str()) {
                found.push(format!("{rel}: {name}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "public executor functions taking a pair of &ConnInfo (take &Migration): {found:?}"
    );
}
