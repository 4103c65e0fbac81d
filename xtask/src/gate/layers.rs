//! The emulator crate's layers, and the lint that keeps every `crate::` path pointing down and
//! the files free of import circles.
//!
//! A file belongs to the layer of its module path (the longest prefix in [`LAYERS`] wins); it
//! may name its own layer and the ones below, never one above. Test code (`tests.rs`, files under
//! a `tests/` folder, and the `#[cfg(test)] mod tests` at a file's end) may reach any layer;
//! comments (doc links) do not count.

use anyhow::{bail, Result};
use std::path::Path;

/// Bottom first: (layer, the module paths it holds, what it is).
pub const LAYERS: &[(&str, &[&str], &str)] = &[
    ("base", &["mem", "cell", "bulk", "heap"], "extents and readers, the one-CPU cell, bulk copies, the heap"),
    ("drivers", &["drivers"], "PL011, PL031, GIC, the device-tree reader"),
    ("core", &["efi"], "the portable UEFI core: memory map, pool, handles, events, variables, PE, FAT, Secure Boot"),
    ("abi", &["abi"], "the hand-off contract: parameter block, blob header, validation, the device-tree entry"),
    ("arch", &["arch", "console"], "AArch64: entry, vectors, MMU, PSCI, timer, the Platform the services run on"),
    ("services", &["services"], "the boot and runtime services payloads call"),
    ("boot", &["boot"], "the boot flow: console, validation, MMU, services, the payload"),
];

/// The layer index of a module path (`services::image`), if it is in a layer.
fn layer_of(module: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, (_, prefixes, _)) in LAYERS.iter().enumerate() {
        for p in *prefixes {
            let hit = module == *p || module.starts_with(&format!("{p}::"));
            if hit && best.is_none_or(|(len, _)| p.len() > len) {
                best = Some((p.len(), i));
            }
        }
    }
    best.map(|(_, i)| i)
}

/// `emulator/src/services/image.rs` -> `services::image`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).filter(|p| p != "mod").collect();
    parts.join("::")
}

/// The code of a source text: without its trailing test module and without comment lines.
fn code(text: &str) -> String {
    let body = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    body.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The paths after each `prefix` (`crate::`, `super::`) in `code`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(prefix) {
        // `$crate::` inside macros is the caller's crate; `super::` must start a path.
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c == '$' || c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        let path: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
        out.push(path.trim_end_matches(':').to_string());
    }
    out
}

/// The `crate::a::b` paths a source text names in its code.
fn crate_paths(text: &str) -> Vec<String> {
    paths_after(&code(text), "crate::")
}

/// The source files of `src` (tests and the crate roots left out), by module path.
fn modules(src: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && !p.file_name().is_some_and(|n| n == "tests.rs" || n == "lib.rs" || n == "main.rs") {
                out.push((module_of(src, &p), p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files each file names (through `crate::` and `super::` paths), parents left out: a child
/// using its parent module's helpers is how Rust nests, not a circle.
fn file_graph(src: &Path) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>> {
    let mods = modules(src)?;
    let names: std::collections::BTreeSet<&str> = mods.iter().map(|(m, _)| m.as_str()).collect();
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|c| names.contains(c.as_str()))
    };
    let mut graph = std::collections::BTreeMap::new();
    for (m, p) in &mods {
        let code = code(&std::fs::read_to_string(p)?);
        // `super` of `a::b` is `a`, whether `b` is a file or a folder's mod.rs.
        let parent = m.rsplit_once("::").map_or("", |(a, _)| a);
        let mut targets = std::collections::BTreeSet::new();
        let named =
            paths_after(&code, "crate::").into_iter().chain(paths_after(&code, "super::").into_iter().map(|s| if parent.is_empty() { s } else { format!("{parent}::{s}") }));
        for path in named {
            if let Some(t) = resolve(&path).filter(|t| t != m && !m.starts_with(&format!("{t}::")) && !t.starts_with(&format!("{m}::"))) {
                targets.insert(t);
            }
        }
        graph.insert(m.clone(), targets);
    }
    Ok(graph)
}

/// The circles among the files: each strongly connected group of two or more, sorted.
pub fn circles(src: &Path) -> Result<Vec<Vec<String>>> {
    let graph = file_graph(src)?;
    // Two files are in one circle when each reaches the other.
    let reach = |from: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(v) = stack.pop() {
            for w in graph.get(&v).into_iter().flatten() {
                if seen.insert(w.clone()) {
                    stack.push(w.clone());
                }
            }
        }
        seen
    };
    let reached: std::collections::BTreeMap<&String, std::collections::BTreeSet<String>> = graph.keys().map(|k| (k, reach(k))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (a, ra) in &reached {
        if out.iter().any(|c| c.contains(a)) {
            continue;
        }
        let mut circle: Vec<String> = ra.iter().filter(|b| *b != *a && reached.get(b).is_some_and(|rb| rb.contains(*a))).cloned().collect();
        if !circle.is_empty() {
            circle.push((*a).clone());
            circle.sort();
            out.push(circle);
        }
    }
    Ok(out)
}

/// Every upward `crate::` path under `src`: (file, path, its layer, the layer named).
pub fn violations(src: &Path) -> Result<Vec<(String, String, &'static str, &'static str)>> {
    let mut out = Vec::new();
    for (module, p) in modules(src)? {
        let Some(own) = layer_of(&module) else { bail!("{}: module {module} is in no layer of xtask/src/gate/layers.rs", p.display()) };
        for path in crate_paths(&std::fs::read_to_string(&p)?) {
            if let Some(named) = layer_of(&path).filter(|&n| n > own) {
                out.push((p.strip_prefix(src).unwrap_or(&p).display().to_string(), path, LAYERS[own].0, LAYERS[named].0));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Fails naming each import circle among the files of `src` (`what` names the crate).
pub fn check_circles(src: &Path, what: &str) -> Result<()> {
    let c = circles(src)?;
    if c.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = c.iter().map(|files| format!("  {}", files.join(" <-> "))).collect();
    bail!("{} import circle(s) among {what}'s files:\n{}", c.len(), lines.join("\n"))
}

/// The lint: fails naming each upward path, then each circle.
pub fn check(src: &Path) -> Result<()> {
    let v = violations(src)?;
    if v.is_empty() {
        return check_circles(src, "the emulator");
    }
    let lines: Vec<String> = v.iter().map(|(f, p, own, named)| format!("  {f}: crate::{p} ({own} may not use {named})")).collect();
    bail!("{} upward import(s) against the layers in xtask/src/gate/layers.rs (docs/architecture.md):\n{}", v.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_map_to_layers_by_their_longest_prefix() {
        assert_eq!(layer_of("services::image").map(|i| LAYERS[i].0), Some("services"));
        assert_eq!(layer_of("efi::pe").map(|i| LAYERS[i].0), Some("core"));
        assert_eq!(layer_of("efivars"), None, "a prefix only up to ::");
        assert_eq!(module_of(Path::new("src"), Path::new("src/services/mod.rs")), "services");
        assert_eq!(crate_paths("use crate::efi::pe::PeImage;\n$crate::console::x();\n#[cfg(test)]\nmod tests { crate::boot::x }"), ["efi::pe::PeImage"]);
    }

    #[test]
    fn an_upward_path_is_named() {
        let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("efi")).unwrap();
        std::fs::write(dir.join("efi/pe.rs"), "use crate::arch::aarch64::bulk;\nuse crate::mem::Extent;\n").unwrap();
        let v = violations(&dir).unwrap();
        assert_eq!(v, [("efi/pe.rs".to_string(), "arch::aarch64::bulk".to_string(), "core", "arch")]);
        assert!(check(&dir).unwrap_err().to_string().contains("core may not use arch"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn circles_are_found_through_crate_and_super_paths() {
        let dir = std::env::temp_dir().join(format!("circles-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("efi")).unwrap();
        std::fs::write(dir.join("efi/a.rs"), "use super::b::x;\n/// [`super::c`]\n").unwrap();
        std::fs::write(dir.join("efi/b.rs"), "use crate::efi::a::y;\n").unwrap();
        std::fs::write(dir.join("efi/c.rs"), "use crate::efi::a::z;\n").unwrap();
        assert_eq!(circles(&dir).unwrap(), [["efi::a", "efi::b"]], "a doc link to c is no import");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_emulator_has_no_upward_import() {
        check(&crate::paths::root().join("emulator/src")).unwrap();
    }
}
