//! The layer test: every `crate::` path in `src/` against the table in `lib.rs`. A module may
//! use only the modules its row names; the table itself must be free of cycles.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    type Map = BTreeMap<String, BTreeSet<String>>;

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    /// The rows of lib.rs's table: module -> the modules it may use.
    fn allowed() -> Map {
        let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
        let mut map = Map::new();
        for line in lib.lines().filter_map(|l| l.strip_prefix("//! | `")) {
            let cells: Vec<&str> = line.split('|').collect();
            let module = cells[0].trim().trim_end_matches('`').to_owned();
            let uses = cells[2]
                .split('`')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            map.insert(module, uses);
        }
        map
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every top-level module each module's files name with `crate::`.
    fn used() -> Map {
        let root = src();
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        let mut map = Map::new();
        for file in files {
            let rel = file.strip_prefix(&root).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            // A top-level `x_tests.rs` holds the unit tests of `x`.
            let module = first
                .trim_end_matches(".rs")
                .trim_end_matches("_tests")
                .to_owned();
            if module == "lib" || module == "main" || module == "layers" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let uses = map.entry(module.clone()).or_default();
            uses.extend(crate_paths(&text).into_iter().filter(|n| *n != module));
        }
        map
    }

    /// The first segment of every `crate::` path in `text`, grouped ones included
    /// (`crate::{a, b::c}` names `a` and `b`).
    fn crate_paths(text: &str) -> BTreeSet<String> {
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let mut names = BTreeSet::new();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + 7..];
            if let Some(group) = rest.strip_prefix('{') {
                // The items at the group's top level, up to its closing brace.
                let (mut depth, mut start) = (0usize, 0usize);
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            names.insert(ident(&group[start..i]));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            names.insert(ident(&group[start..i]));
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
            } else {
                names.insert(ident(rest));
            }
        }
        names.remove("");
        names
    }

    #[test]
    fn grouped_imports_are_seen() {
        let text = "use crate::{token::Token, config::{Config, Role},\n    metrics};\nlet x = crate::clock::now();";
        let found: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(found, ["clock", "config", "metrics", "token"]);
    }

    #[test]
    fn every_module_uses_only_the_layers_below_it() {
        let allowed = allowed();
        assert!(
            allowed.len() >= 14,
            "the table in lib.rs was not found: {allowed:?}"
        );
        let mut wrong = Vec::new();
        for (module, uses) in used() {
            let Some(may) = allowed.get(&module) else {
                wrong.push(format!("{module} is not in lib.rs's table"));
                continue;
            };
            for u in uses.difference(may) {
                wrong.push(format!("{module} uses {u}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "imports the layer map forbids: {wrong:#?}"
        );
    }

    #[test]
    fn the_layer_map_has_no_cycle() {
        let allowed = allowed();
        // Repeatedly remove modules whose every dependency is already removed.
        let mut left = allowed.clone();
        while !left.is_empty() {
            let ready: Vec<String> = left
                .iter()
                .filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
                .map(|(m, _)| m.clone())
                .collect();
            assert!(!ready.is_empty(), "a cycle among {:?}", left.keys());
            for m in ready {
                left.remove(&m);
            }
        }
        for uses in allowed.values() {
            for u in uses {
                assert!(allowed.contains_key(u), "{u} is used but has no row");
            }
            assert!(
                !uses.contains("cli") && !uses.contains("modes"),
                "nothing uses cli or modes"
            );
        }
    }

    /// Whether `text` reaches into `token::name` (Pinball's workflow names): by path, in a
    /// grouped import, or through `name::` after a glob import of `token`.
    fn names_workflows(text: &str) -> bool {
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let grouped = code.match_indices("token::{").any(|(at, _)| {
            let group = &code[at + 8..];
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .any(|item| item.trim().starts_with("name"))
        });
        let bare = code
            .match_indices("name::")
            .any(|(at, _)| !code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
        code.contains("token::name") || grouped || bare
    }

    #[test]
    fn the_master_and_storage_know_no_workflows() {
        let root = src();
        let mut files = Vec::new();
        for dir in ["master", "storage"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 10, "master and storage files: {files:?}");
        let wrong: Vec<_> = files
            .iter()
            .filter(|f| names_workflows(&std::fs::read_to_string(f).unwrap()))
            .collect();
        assert!(
            wrong.is_empty(),
            "these files use token::name; the master and storage are told names through \
             master::Naming (filled by modes) instead: {wrong:?}"
        );
    }

    #[test]
    fn workflow_names_are_seen_however_imported() {
        assert!(names_workflows("use crate::token::name::WORKFLOW_PREFIX;"));
        assert!(names_workflows(
            "use crate::token::{MasterError, name::Name};"
        ));
        assert!(names_workflows(
            "use crate::token::*;\nlet p = name::OUTBOX_PREFIX;"
        ));
        assert!(!names_workflows("let job_name::x = 1; // token::name"));
        assert!(!names_workflows("use crate::token::{MasterError, NEVER};"));
    }

    /// The functions of `text` longer than `max` lines, as `name (lines)`: a function starts
    /// at a line whose code begins with `fn` (after `pub`, `async`, ...) and ends at the first
    /// line that is its indentation and `}` (rustfmt's layout).
    fn long_functions(text: &str, max: usize) -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut long = Vec::new();
        for (at, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let indent = &line[..line.len() - code.len()];
            let words: Vec<&str> = code.split_whitespace().collect();
            let Some(fn_at) = words.iter().position(|w| *w == "fn") else {
                continue;
            };
            let qualifiers = [
                "pub",
                "pub(crate)",
                "pub(super)",
                "async",
                "const",
                "unsafe",
            ];
            if !words[..fn_at].iter().all(|w| qualifiers.contains(w)) {
                continue;
            }
            // The signature ends at the first line ending in `{` (a body) or `;` (a
            // declaration in a trait, which has no body).
            let signature_end = lines[at..]
                .iter()
                .map(|l| l.trim_end())
                .find(|l| l.ends_with('{') || l.ends_with(';'));
            if !signature_end.is_some_and(|l| l.ends_with('{')) {
                continue;
            }
            let close = format!("{indent}}}");
            let Some(end) = lines[at..].iter().position(|l| *l == close) else {
                continue;
            };
            if end + 1 > max {
                let name = words.get(fn_at + 1).unwrap_or(&"?");
                let name = name.split(['(', '<']).next().unwrap_or(name);
                long.push(format!("{name} ({} lines)", end + 1));
            }
        }
        long
    }

    #[test]
    fn files_and_functions_stay_small() {
        let mut files = Vec::new();
        rust_files(&src(), &mut files);
        let mut over_400 = Vec::new();
        let mut wrong = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let n = text.lines().count();
            let shown = f.strip_prefix(src()).unwrap().display().to_string();
            if n > 600 {
                wrong.push(format!("{shown} has {n} lines (at most 600)"));
            } else if n > 400 {
                over_400.push(shown.clone());
            }
            for long in long_functions(&text, 80) {
                wrong.push(format!("{shown}: fn {long} (at most 80)"));
            }
        }
        if over_400.len() > 5 {
            wrong.push(format!("more than 5 files over 400 lines: {over_400:?}"));
        }
        assert!(
            wrong.is_empty(),
            "split these (unit tests may go to a sibling *_tests.rs file): {wrong:#?}"
        );
    }

    #[test]
    fn a_long_function_is_seen() {
        let body = "    let x = 1;\n".repeat(81);
        let text = format!("pub async fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
        assert_eq!(long_functions(&text, 80), ["long (83 lines)"]);
        let trait_decl = "    fn decl(&self);\n    fn other(&self) {\n    }\n";
        assert!(
            long_functions(trait_decl, 1)
                .iter()
                .all(|f| !f.starts_with("decl"))
        );
    }

    #[test]
    fn the_test_sees_a_forbidden_import() {
        // The checker itself: a planted `crate::ui` in storage would be caught.
        let mut used = used();
        used.get_mut("storage").unwrap().insert("ui".into());
        let allowed = allowed();
        let storage = &used["storage"];
        assert!(storage.difference(&allowed["storage"]).any(|u| u == "ui"));
    }
}
