//! The copy-back against archives made here, as an engine would give them.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::workspace::pack;

/// A workspace with files of known modes, packed (with its manifest) as a copy would.
struct Case {
    root: PathBuf,
    copy_back: CopyBack,
}

fn case(name: &str, files: &[(&str, &str)]) -> Case {
    let root = std::env::temp_dir().join(format!("moat-copy-back-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let ignore = Ignore::load(&root).unwrap();
    let (mut reader, packing) = pack::start(&root, "workspace", &ignore, true).unwrap();
    io::copy(&mut reader, &mut io::sink()).unwrap();
    let manifest = packing.finish().unwrap().unwrap();
    Case {
        copy_back: CopyBack::new(&root, "workspace", ignore, manifest),
        root,
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// An archive as the engine gives one back.
struct Archive(tar::Builder<Vec<u8>>);

impl Archive {
    fn new() -> Archive {
        let mut a = Archive(tar::Builder::new(Vec::new()));
        a.dir("workspace");
        a
    }

    fn header(kind: EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h
    }

    fn dir(&mut self, path: &str) -> &mut Archive {
        let mut h = Archive::header(EntryType::Directory, 0o755);
        self.0.append_data(&mut h, path, io::empty()).unwrap();
        self
    }

    fn file(&mut self, path: &str, text: &str) -> &mut Archive {
        self.file_mode(path, text, 0o644)
    }

    fn file_mode(&mut self, path: &str, text: &str, mode: u32) -> &mut Archive {
        let mut h = Archive::header(EntryType::Regular, mode);
        h.set_size(text.len() as u64);
        // `append_data` refuses `..`; the raw name goes in as it is.
        h.set_path("x").unwrap();
        let name = h.as_old_mut();
        name.name = [0; 100];
        name.name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        self.0.append(&h, text.as_bytes()).unwrap();
        self
    }

    fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Archive {
        let mut h = Archive::header(kind, 0o777);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

fn never() -> Option<String> {
    None
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn added_and_changed_come_back_and_nothing_is_deleted() {
    let c = case(
        "basic",
        &[
            ("same-size.txt", "one"),
            ("grown.txt", "short"),
            ("untouched.txt", "as it was"),
            ("deleted-inside.txt", "still here"),
            ("sub/deep.txt", "deep"),
        ],
    );
    let archive = Archive::new()
        .file("workspace/same-size.txt", "two")
        .file("workspace/grown.txt", "much longer now")
        .file("workspace/untouched.txt", "as it was")
        .dir("workspace/sub")
        .file("workspace/sub/deep.txt", "deep")
        .file("workspace/sub/new.txt", "new")
        .dir("workspace/made")
        .file_mode("workspace/made/run.sh", "#!/bin/sh\n", 0o755)
        .bytes();
    let report = c.copy_back.apply(&archive[..], &mut never);
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(report.written, 4, "{report:?}");
    assert!(
        report.conflicts.is_empty() && report.skipped.is_empty(),
        "{report:?}"
    );
    assert_eq!(read(&c.root, "same-size.txt"), "two");
    assert_eq!(read(&c.root, "grown.txt"), "much longer now");
    assert_eq!(read(&c.root, "deleted-inside.txt"), "still here");
    assert_eq!(read(&c.root, "sub/new.txt"), "new");
    let mode = std::fs::metadata(c.root.join("made/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let names: Vec<_> = std::fs::read_dir(&c.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".moat"))
        .collect();
    assert!(names.is_empty(), "temporaries left: {names:?}");
}

#[test]
fn a_file_changed_on_both_sides_is_a_conflict_and_the_host_wins() {
    let c = case(
        "conflict",
        &[("both.txt", "original"), ("host-only.txt", "original")],
    );
    std::fs::write(c.root.join("both.txt"), "host edit").unwrap();
    std::fs::write(c.root.join("host-only.txt"), "host edit").unwrap();
    std::fs::write(c.root.join("made-on-host.txt"), "host").unwrap();
    let archive = Archive::new()
        .file("workspace/both.txt", "container edit")
        .file("workspace/host-only.txt", "original")
        .file("workspace/made-on-host.txt", "container")
        .bytes();
    let report = c.copy_back.apply(&archive[..], &mut never);
    assert_eq!(report.written, 0, "{report:?}");
    assert_eq!(
        report.conflicts,
        ["both.txt", "made-on-host.txt"],
        "{report:?}"
    );
    assert_eq!(read(&c.root, "both.txt"), "host edit");
    assert_eq!(read(&c.root, "host-only.txt"), "host edit");
    assert_eq!(read(&c.root, "made-on-host.txt"), "host");
}

#[test]
fn the_same_change_on_both_sides_is_no_conflict() {
    let c = case("same-change", &[("f.txt", "original")]);
    std::fs::write(c.root.join("f.txt"), "edited").unwrap();
    std::fs::set_permissions(c.root.join("f.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let archive = Archive::new().file("workspace/f.txt", "edited").bytes();
    let report = c.copy_back.apply(&archive[..], &mut never);
    assert_eq!(report, Report::default());
}

#[test]
fn excluded_and_unsafe_paths_never_reach_the_host() {
    let c = case("unsafe", &[(".moatignore", "secret\n")]);
    let outside = c.root.with_file_name(format!(
        "{}-outside",
        c.root.file_name().unwrap().to_string_lossy()
    ));
    let archive = Archive::new()
        .file("workspace/secret", "from the container")
        .file("workspace/../escape", "x")
        .file("/abs", "x")
        .file("other/top", "x")
        .link(EntryType::Symlink, "workspace/out", "/etc/passwd")
        .link(EntryType::Symlink, "workspace/up", "../../x")
        .link(EntryType::Symlink, "workspace/dirlink", "made")
        .file("workspace/dirlink/through", "x")
        .link(EntryType::Symlink, "workspace/fine", "sub/../secret")
        .bytes();
    let report = c.copy_back.apply(&archive[..], &mut never);
    assert_eq!(report.error, None, "{report:?}");
    assert!(!c.root.join("secret").exists());
    assert!(!c.root.with_file_name("escape").exists());
    assert!(!outside.exists());
    assert!(!c.root.join("out").exists() && !c.root.join("up").exists());
    assert!(c.root.join("dirlink").is_symlink());
    assert!(c.root.join("fine").is_symlink());
    assert_eq!(report.written, 2, "{report:?}");
    let skipped = report.skipped.join("\n");
    for what in [
        "../escape",
        "/abs",
        "other/top",
        "out:",
        "up:",
        "dirlink/through",
    ] {
        assert!(skipped.contains(what), "{what} not in {skipped}");
    }
}

#[test]
fn a_hard_link_is_a_copy_of_a_file_copied_back() {
    let c = case("hardlink", &[]);
    let archive = Archive::new()
        .file("workspace/a", "content")
        .link(EntryType::Link, "workspace/b", "workspace/a")
        .link(EntryType::Link, "workspace/c", "workspace/missing")
        .bytes();
    let report = c.copy_back.apply(&archive[..], &mut never);
    assert_eq!(report.written, 2, "{report:?}");
    assert_eq!(read(&c.root, "b"), "content");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
}

#[test]
fn a_type_change_that_needs_a_deletion_is_skipped() {
    let c = case("types", &[("was-file", "x"), ("was-dir/f", "y")]);
    let archive = Archive::new()
        .dir("workspace/was-file")
        .file("workspace/was-file/inner", "z")
        .file("workspace/was-dir", "now a file")
        .bytes();
    let report = c.copy_back.apply(&archive[..], &mut never);
    assert_eq!(report.written, 0, "{report:?}");
    assert_eq!(report.skipped.len(), 2, "{report:?}");
    assert_eq!(read(&c.root, "was-file"), "x");
    assert_eq!(read(&c.root, "was-dir/f"), "y");
}

#[test]
fn a_stop_ends_the_copy_back_with_whole_files_only() {
    let c = case("stop", &[]);
    let big = "x".repeat(1 << 20);
    let archive = Archive::new()
        .file("workspace/first", "1")
        .file("workspace/big", &big)
        .bytes();
    let mut reads = 0;
    let mut stop = || {
        reads += 1;
        (reads > 3).then(|| "interrupted by SIGINT".to_string())
    };
    let report = c.copy_back.apply(&archive[..], &mut stop);
    let error = report.error.clone().expect("stopped");
    assert!(error.contains("interrupted by SIGINT"), "{error}");
    assert!(!c.root.join("big").exists(), "{report:?}");
    let left: Vec<_> = std::fs::read_dir(&c.root).unwrap().collect();
    assert!(left.len() <= 1, "temporaries left: {left:?}");
}

#[test]
fn paths_and_links_are_judged_by_name() {
    assert_eq!(relative(b"workspace/a/b", "workspace"), Some("a/b".into()));
    assert_eq!(
        relative(b"./workspace//a/./b/", "workspace"),
        Some("a/b".into())
    );
    assert_eq!(relative(b"workspace", "workspace"), Some(PathBuf::new()));
    assert_eq!(relative(b"workspace/../x", "workspace"), None);
    assert_eq!(relative(b"/workspace/x", "workspace"), None);
    assert_eq!(relative(b"other/x", "workspace"), None);
    assert!(stays_inside(Path::new("a/link"), b"../b"));
    assert!(!stays_inside(Path::new("a/link"), b"../../b"));
    assert!(!stays_inside(Path::new("link"), b"/etc"));
    assert!(stays_inside(Path::new("link"), b"x/../y"));
    assert!(!stays_inside(Path::new("link"), b""));
}
