//! The house's shape, checked on the sources: arrows between the modules of
//! each crate point one way (no import cycle), and only the durability seam
//! asks for the replicated log; storage records know nothing of HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    crate::helpers::repo_root()
}

/// Every `.rs` file under `dir` (the metric lint walks the sources too).
pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source before its unit tests: tests may reach anywhere.
fn without_tests(source: &str) -> &str {
    source.find("#[cfg(test)]\nmod tests").map_or(source, |i| &source[..i])
}

/// Each top-level module of the crate rooted at `src` and the top-level
/// modules it names through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a path").as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("read a source file");
        let uses = graph.entry(module.clone()).or_default();
        let code = without_tests(&source);
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten().filter(|n| graph.contains_key(*n)) {
            if let Some(c) = visit(next, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    for krate in ["src", "actors/src", "storage/src", "schedules/src"] {
        let graph = module_graph(&root().join(krate));
        assert!(graph.len() > 3, "{krate}: modules found: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate} has an import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a")].into_iter().map(|(m, u)| (m.to_string(), BTreeSet::from([u.to_string()]))).collect();
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

#[test]
fn only_the_durability_seam_asks_for_the_replicated_log() {
    let mut files = Vec::new();
    for krate in ["src", "actors/src", "schedules/src"] {
        rust_files(&root().join(krate), &mut files);
    }
    let seam = root().join("actors/src/durability");
    let cluster = root().join("actors/src/cluster");
    for file in files.iter().filter(|f| !f.starts_with(&seam) && !f.starts_with(&cluster)) {
        let source = std::fs::read_to_string(file).expect("read a source file");
        for needle in ["replicated()", ".log()"] {
            assert!(!without_tests(&source).contains(needle), "{} calls {needle}", file.display());
        }
    }
}

#[test]
fn routes_and_commands_build_no_storage_batch() {
    let mut files = Vec::new();
    rust_files(&root().join("src/http/routes"), &mut files);
    files.push(root().join("src/cli.rs"));
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        for needle in ["Batch::new", ".commit(", ".commit_conversation(", ".commit_first(", ".commit_node(", "append_first(", "LogRecord"] {
            assert!(!without_tests(&source).contains(needle), "{} builds or commits a write itself ({needle})", file.display());
        }
    }
}

/// The storage paths `code` names that reach past the record types: a
/// module of queries (`model::user::…`, `model::{user, …}`) or the engine
/// (`backup::`, `migrations::`, `Map::`).
fn storage_reaches(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in code.match_indices("utalk_storage::") {
        let rest = &code[i + "utalk_storage::".len()..];
        let path: String =
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '{' | ',' | ' ' | '}')).collect();
        let path = path.split('}').next().unwrap_or_default();
        let names: Vec<&str> = path.split([':', '{', ',', ' ']).filter(|n| !n.is_empty()).collect();
        // `model` is the records' folder; what follows it must be a type.
        let past_model = if names.first() == Some(&"model") { &names[1..] } else { &names[..] };
        if past_model.iter().any(|n| n.starts_with(|c: char| c.is_ascii_lowercase())) {
            found.push(format!("utalk_storage::{path}"));
        }
    }
    for (i, _) in code.match_indices("db.") {
        let before = code[..i].chars().next_back();
        let method: String = code[i + 3..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && method != "clone" && !method.is_empty() {
            found.push(format!("db.{method}"));
        }
    }
    found
}

#[test]
fn routes_call_services_never_storage() {
    // Routes and the authentication around them read and write through
    // src/services; they may name record types (to build views), never a
    // query, a batch or the engine.
    let mut files = Vec::new();
    rust_files(&root().join("src/http"), &mut files);
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        let reaches = storage_reaches(without_tests(&source));
        assert!(reaches.is_empty(), "{} reaches storage: {reaches:?}", file.display());
    }
}

#[test]
fn the_storage_check_sees_queries_and_passes_types() {
    assert!(storage_reaches("use utalk_storage::model::{Role, Conversation};\nuse utalk_storage::Db;\nlet x = db.clone();").is_empty());
    assert_eq!(storage_reaches("use utalk_storage::model::{conversation, Role};"), ["utalk_storage::model::{conversation, Role"]);
    assert_eq!(storage_reaches("utalk_storage::model::user::get(&db, id)"), ["utalk_storage::model::user::get"]);
    assert_eq!(storage_reaches("let v = db.schema_version();"), ["db.schema_version"]);
}

#[test]
fn storage_records_know_nothing_of_http() {
    let manifest = std::fs::read_to_string(root().join("storage/Cargo.toml")).expect("read storage/Cargo.toml");
    assert!(!manifest.contains("utoipa"), "the storage crate depends on the HTTP schema crate");
    let mut files = Vec::new();
    rust_files(&root().join("storage/src"), &mut files);
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        for needle in ["ToSchema", "#[schema(", "actix"] {
            assert!(!source.contains(needle), "{} speaks HTTP ({needle})", file.display());
        }
    }
}

#[test]
fn handlers_name_the_parts_they_use() {
    // Each part of the server is registered on its own (src/state.rs), so a
    // handler's signature says what it may touch; a bag of every part would
    // hide that again.
    let mut files = Vec::new();
    rust_files(&root().join("src/http"), &mut files);
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        for needle in ["web::Data<Shared>", "web::Data<Parts>", "AppState"] {
            assert!(!source.contains(needle), "{} takes the whole state ({needle})", file.display());
        }
    }
}

#[test]
fn what_nodes_send_each_other_lives_in_one_module_of_its_own_types() {
    // The wire module names storage records and the cluster's error, never a
    // command, an event or a view: a change to those cannot change what
    // nodes send each other unnoticed. And nothing else encodes for the wire.
    let wire = root().join("actors/src/wire");
    let mut files = Vec::new();
    rust_files(&wire, &mut files);
    assert!(files.len() >= 5, "the wire module has its files");
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        for (i, _) in without_tests(&source).match_indices("crate::") {
            let path: String = source[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':')).collect();
            assert!(
                path.starts_with("crate::wire") || path == "crate::cluster::ClusterError",
                "{} names {path}, which is not a wire type",
                file.display()
            );
        }
    }
    let mut others = Vec::new();
    for krate in ["src", "actors/src", "schedules/src"] {
        rust_files(&root().join(krate), &mut others);
    }
    for file in others.iter().filter(|f| !f.starts_with(&wire)) {
        let source = std::fs::read_to_string(file).expect("read a source file");
        assert!(!source.contains("rmp_serde"), "{} encodes for the wire outside actors/src/wire", file.display());
    }
    let mut conversation = Vec::new();
    rust_files(&root().join("actors/src/conversation"), &mut conversation);
    for file in &conversation {
        let source = std::fs::read_to_string(file).expect("read a source file");
        assert!(!source.contains("Deserialize"), "{} makes a conversation type readable from bytes", file.display());
    }
}
