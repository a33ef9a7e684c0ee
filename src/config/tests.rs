use std::path::{Path, PathBuf};

use super::*;

fn at<T>(value: T, line: usize, column: usize) -> Sourced<T> {
    Sourced {
        value,
        line,
        column,
    }
}

fn s(value: &str, line: usize, column: usize) -> Sourced<String> {
    at(value.to_string(), line, column)
}

fn values(list: &[Sourced<String>]) -> Vec<&str> {
    list.iter().map(|s| s.value.as_str()).collect()
}

fn read(text: &str) -> Config {
    parse(Path::new("moat.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
}

/// The error's text, `moat.yaml:LINE:COL: message`.
fn fails(text: &str) -> String {
    match parse(Path::new("moat.yaml"), text) {
        Ok(c) => panic!("read: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/moat-yaml")
        .join(name)
}

#[test]
fn every_key_of_the_complete_example() {
    let file = fixture("complete.yaml");
    let c = load(Path::new("/nowhere"), Some(&file)).unwrap().unwrap();
    let dir = file.parent().unwrap().to_str().unwrap();
    assert_eq!(
        c,
        Config {
            file: file.clone(),
            name: Some(s("nightly-tests", 2, 7)),
            image: Some(s("ubuntu:24.04", 3, 8)),
            command: Some(at(vec!["make".into(), "test".into()], 4, 10)),
            interactive: Some(at(false, 5, 14)),
            env: vec![s("CI=true", 7, 3), s("HOME_TOKEN", 8, 3)],
            env_files: vec![s(&format!("{dir}/.env.ci"), 9, 11)],
            mounts: vec![
                s(&format!("{dir}/cache:/cache"), 11, 5),
                s("/etc/ssl/certs:/etc/ssl/certs:ro", 12, 5),
            ],
            workdir: Some(s("/workspace/src", 13, 10)),
            user: Some(s("1000:1000", 14, 7)),
            ports: vec![s("8080:80", 16, 5), s("9229", 17, 5)],
            network_policy: Some(s("strict", 19, 11)),
            network_allow: vec![s("api.example.com", 21, 7), s("example.org:8443", 22, 7)],
            memory: Some(s("2g", 24, 11)),
            cpus: Some(s("1.5", 25, 9)),
            pids: Some(s("256", 26, 9)),
            timeout: Some(s("30m", 27, 10)),
            stop_timeout: Some(s("20", 28, 15)),
            runtime: Some(s("docker", 29, 10)),
            agent: Some(s("claude", 30, 8)),
            keep: Some(at(true, 31, 7)),
        }
    );
}

#[test]
fn an_empty_file_sets_nothing() {
    for text in ["", "\n", "# nothing yet\n", "---\n", "\u{feff}"] {
        assert_eq!(
            read(text),
            Config {
                file: "moat.yaml".into(),
                ..Config::default()
            }
        );
    }
}

#[test]
fn the_top_level_must_be_a_mapping() {
    for text in ["- a\n- b\n", "just words\n", "# c\n\n42\n"] {
        assert_eq!(
            fails(text),
            "moat.yaml:1:1: the file must be a mapping of settings (key: value)"
        );
    }
}

#[test]
fn env_as_a_mapping_or_a_list() {
    let c = read("env:\n  A: 1\n  B: x=y\n  C:\n  D: true\n  E: ''\n");
    assert_eq!(values(&c.env), ["A=1", "B=x=y", "C", "D=true", "E="]);
    assert_eq!(c.env[1], s("B=x=y", 3, 3));
    let c = read("env:\n  - A=1\n  - B\n  - C=\n");
    assert_eq!(values(&c.env), ["A=1", "B", "C="]);
    assert_eq!(c.env[1], s("B", 3, 5));
    assert_eq!(read("env:\n").env, []);
    assert_eq!(read("env: {}\n").env, []);
}

#[test]
fn env_of_the_wrong_shape() {
    assert_eq!(
        fails("env: A=1\n"),
        "moat.yaml:1:6: \"env\" must be a mapping (KEY: VALUE) or a list of \"KEY=VALUE\" strings"
    );
    assert_eq!(
        fails("env:\n  A: [1]\n"),
        "moat.yaml:2:6: \"env.A\" must be a string"
    );
    assert_eq!(
        fails("env:\n  - A=1\n  - {B: 2}\n"),
        "moat.yaml:3:5: each entry of \"env\" must be a string"
    );
    assert_eq!(
        fails("env:\n  \"A=B\": c\n"),
        "moat.yaml:2:3: \"env\" key \"A=B\" cannot contain \"=\""
    );
}

#[test]
fn env_file_is_one_path_or_a_list() {
    let c = parse(Path::new("/p/moat.yaml"), "env_file: a.env\n").unwrap();
    assert_eq!(values(&c.env_files), ["/p/a.env"]);
    let c = parse(
        Path::new("/p/moat.yaml"),
        "env_file:\n  - ./a.env\n  - /etc/b.env\n",
    )
    .unwrap();
    assert_eq!(values(&c.env_files), ["/p/a.env", "/etc/b.env"]);
    assert_eq!(
        fails("env_file: {a: b}\n"),
        "moat.yaml:1:11: \"env_file\" must be a path or a list of paths"
    );
}

#[test]
fn relative_paths_are_the_files_own() {
    let text = "mounts:\n  - data:/data\n  - ./x:/x:ro\n  - .:/src\n  - /abs:/abs\n  - nocolon\n";
    let c = parse(Path::new("/work/proj/moat.yaml"), text).unwrap();
    assert_eq!(
        values(&c.mounts),
        [
            "/work/proj/data:/data",
            "/work/proj/x:/x:ro",
            "/work/proj:/src",
            "/abs:/abs",
            "/work/proj/nocolon",
        ]
    );
    // A file named without a directory (`-f moat.yaml`): relative to the current one.
    let c = read("mounts:\n  - data:/data\n  - .:/src\n");
    assert_eq!(values(&c.mounts), ["data:/data", ".:/src"]);
    let c = parse(Path::new("sub/moat.yaml"), "mounts: ['./d:/d']\n").unwrap();
    assert_eq!(values(&c.mounts), ["sub/d:/d"]);
}

#[test]
fn command_is_a_list_of_words() {
    let c = read("command: [sh, -c, 'echo hi', 5]\n");
    assert_eq!(c.command.unwrap().value, ["sh", "-c", "echo hi", "5"]);
    let c = read("command:\n  - npm\n  - test\n");
    assert_eq!(c.command, Some(at(vec!["npm".into(), "test".into()], 2, 3)));
    assert_eq!(
        read("command: []\n").command.unwrap().value,
        Vec::<String>::new()
    );
    assert!(fails("command: npm test\n").starts_with(
        "moat.yaml:1:10: \"command\" must be a list of words, e.g. [\"npm\", \"test\"]"
    ));
    assert_eq!(
        fails("command: [npm, [x]]\n"),
        "moat.yaml:1:16: each entry of \"command\" must be a string"
    );
    assert_eq!(
        fails("command: {a: b}\n"),
        "moat.yaml:1:10: \"command\" must be a list of words"
    );
}

#[test]
fn scalars_for_string_keys() {
    let c = read("user: 1000\nname: 2024\nstop_timeout: 10\ntimeout: 90s\n");
    assert_eq!(c.user, Some(s("1000", 1, 7)));
    assert_eq!(c.name.unwrap().value, "2024");
    assert_eq!(c.stop_timeout.unwrap().value, "10");
    assert_eq!(c.timeout.unwrap().value, "90s");
}

#[test]
fn wrong_types_say_what_is_wanted_and_where() {
    let cases = [
        (
            "keep: yes\n",
            "moat.yaml:1:7: \"keep\" must be true or false",
        ),
        (
            "name: x\nresources:\n  pids: 10\n  cpus: 1\ninteractive: 1\n",
            "moat.yaml:5:14: \"interactive\" must be true or false",
        ),
        ("image: [a]\n", "moat.yaml:1:8: \"image\" must be a string"),
        ("image:\n", "moat.yaml:1:6: \"image\" must be a string"),
        (
            "workdir: true\n",
            "moat.yaml:1:10: \"workdir\" must be a string",
        ),
        (
            "resources:\n  pids: \"10\"\n",
            "moat.yaml:2:9: \"resources.pids\" must be a whole number",
        ),
        (
            "resources:\n  memory: 512\n",
            "moat.yaml:2:11: \"resources.memory\" must be a size with a unit, like \"512m\" or \"2g\"",
        ),
        (
            "resources: 2g\n",
            "moat.yaml:1:12: \"resources\" must be a mapping (memory, cpus, pids)",
        ),
        (
            "network: none\n",
            "moat.yaml:1:10: \"network\" must be a mapping (policy, allow)",
        ),
        (
            "network:\n  allow: api.example.com\n",
            "moat.yaml:2:10: \"network.allow\" must be a list of hosts",
        ),
        (
            "ports: 8080\n",
            "moat.yaml:1:8: \"ports\" must be a list of ports (as -p takes them)",
        ),
        (
            "ports:\n  - [1]\n",
            "moat.yaml:2:5: each entry of \"ports\" must be a string",
        ),
        (
            "mounts: /a:/b\n",
            "moat.yaml:1:9: \"mounts\" must be a list of SRC:DST[:ro] strings",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(fails(text), want, "{text:?}");
    }
}

#[test]
fn typos_name_the_nearest_key() {
    assert_eq!(
        fails("name: x\nimgae: ubuntu\n"),
        "moat.yaml:2:1: unknown key \"imgae\" (did you mean \"image\"?)"
    );
    assert_eq!(
        fails("resources:\n  cpus: 2\n  memroy: 2g\n"),
        "moat.yaml:3:3: unknown key \"resources.memroy\" (did you mean \"resources.memory\"?)"
    );
    assert_eq!(
        fails("network:\n    polcy: strict\n"),
        "moat.yaml:2:5: unknown key \"network.polcy\" (did you mean \"network.policy\"?)"
    );
    assert_eq!(
        fails("stop-timeout: 5\n"),
        "moat.yaml:1:1: unknown key \"stop-timeout\" (did you mean \"stop_timeout\"?)"
    );
    assert_eq!(
        fails("mounts:\n  - sorce: .\n    target: /x\n"),
        "moat.yaml:2:5: unknown key \"mounts.sorce\" (did you mean \"mounts.source\"?)"
    );
    assert_eq!(
        fails("frobnicate: 1\n"),
        "moat.yaml:1:1: unknown key \"frobnicate\""
    );
    assert_eq!(
        fails("cpus: 2\n"),
        "moat.yaml:1:1: unknown key \"cpus\" (did you mean \"resources.cpus\"?)"
    );
    assert_eq!(
        fails("<<: {image: x}\n"),
        "moat.yaml:1:1: YAML merge keys (<<) are not supported: write the keys out"
    );
}

#[test]
fn a_key_is_set_once() {
    assert_eq!(
        fails("image: a\nname: x\nimage: b\n"),
        "moat.yaml:3:1: duplicate key \"image\" (first at line 1)"
    );
    assert_eq!(
        fails("env:\n  A: 1\n  A: 2\n"),
        "moat.yaml:3:3: duplicate key \"A\" (first at line 2)"
    );
    // The same limit through moat's key and Go moat's.
    assert_eq!(
        fails("resources:\n  memory: 1g\ncontainer:\n  memory: 1024\n"),
        "moat.yaml:4:11: the memory limit is set twice (first at line 2)"
    );
    assert_eq!(
        fails("container:\n  cpus: 2\nresources:\n  cpus: 2\n"),
        "moat.yaml:4:9: the cpus limit is set twice (first at line 2)"
    );
}

#[test]
fn go_moat_keys_that_mean_the_same() {
    let text = "\
agent: codex
container:
  memory: 16384
  cpus: 8
ports:
  web: 3000
  api: 8080
network:
  policy: permissive
  rules:
    - api.example.com
    - \"*.example.org\"
  allow:
    - example.net
mounts:
  - source: ./data
    target: /data
  - source: /cache
    target: /cache
    mode: ro
";
    let c = parse(Path::new("/p/moat.yaml"), text).unwrap();
    assert_eq!(c.agent, Some(s("codex", 1, 8)));
    assert_eq!(c.memory, Some(s("16384m", 3, 11)));
    assert_eq!(c.cpus, Some(s("8", 4, 9)));
    assert_eq!(c.ports, [s("3000", 6, 8), s("8080", 7, 8)]);
    assert_eq!(c.network_policy, Some(s("open", 9, 11)));
    assert_eq!(
        values(&c.network_allow),
        ["api.example.com", "*.example.org", "example.net"]
    );
    assert_eq!(
        c.mounts,
        [s("/p/data:/data", 16, 5), s("/cache:/cache:ro", 18, 5)]
    );
}

#[test]
fn go_moat_keys_of_the_wrong_type() {
    assert_eq!(
        fails("container:\n  memory: 8g\n"),
        "moat.yaml:2:11: \"container.memory\" must be a whole number of megabytes"
    );
    assert_eq!(
        fails("ports:\n  web: \"3000\"\n"),
        "moat.yaml:2:8: \"ports.web\" must be a port number"
    );
    assert_eq!(
        fails("mounts:\n  - target: /x\n"),
        "moat.yaml:2:5: a mount needs a \"source\" and a \"target\""
    );
}

#[test]
fn go_moat_keys_moat_does_not_do_are_refused_by_name() {
    for key in keys::TOP.go_only {
        let text = format!("name: x\n{key}: whatever\n");
        assert_eq!(
            fails(&text),
            format!("moat.yaml:2:1: \"{key}\" is a Go moat key that moat does not support"),
        );
    }
    let nested = [
        ("network:\n  host: [11434]\n", "2:3: \"network.host\""),
        (
            "network:\n  keep_policy: x.yaml\n",
            "2:3: \"network.keep_policy\"",
        ),
        ("container:\n  dns: [1.1.1.1]\n", "2:3: \"container.dns\""),
        ("container:\n  ulimits: {}\n", "2:3: \"container.ulimits\""),
        (
            "mounts:\n  - source: .\n    target: /w\n    exclude: [node_modules]\n",
            "4:5: \"mounts.exclude\"",
        ),
    ];
    for (text, want) in nested {
        assert_eq!(
            fails(text),
            format!("moat.yaml:{want} is a Go moat key that moat does not support")
        );
    }
    assert_eq!(
        fails("network:\n  rules:\n    - api.example.com:\n        - allow GET /**\n"),
        "moat.yaml:3:7: per-host request rules in \"network.rules\" are a Go moat feature \
         that moat does not support; list the host alone"
    );
}

#[test]
fn go_moat_style_files() {
    let file = fixture("go-agent.yaml");
    let c = load(Path::new("/nowhere"), Some(&file)).unwrap().unwrap();
    let dir = file.parent().unwrap().to_str().unwrap();
    assert_eq!(c.name, Some(s("review-bot", 3, 7)));
    assert_eq!(c.agent, Some(s("claude", 4, 8)));
    assert_eq!(values(&c.env), ["NODE_ENV=production", "LOG_LEVEL=debug"]);
    assert_eq!(
        values(&c.mounts),
        [
            format!("{dir}/cache:/home/dev/.cache:ro"),
            format!("{dir}/data:/data:ro"),
        ]
    );
    assert_eq!(c.network_policy, Some(s("strict", 17, 11)));
    assert_eq!(
        values(&c.network_allow),
        ["api.example.com", "*.example.org"]
    );
    assert_eq!(c.memory, Some(s("4096m", 23, 11)));
    assert_eq!(c.cpus, Some(s("2", 24, 9)));
    assert_eq!(c.command.unwrap().value, ["claude", "--help"]);
    assert_eq!(c.interactive, Some(at(true, 27, 14)));

    let file = fixture("go-endpoints.yaml");
    let c = load(Path::new("/nowhere"), Some(&file)).unwrap().unwrap();
    assert_eq!(c.runtime, Some(s("docker", 3, 10)));
    assert_eq!(values(&c.ports), ["3000", "8081"]);
    assert_eq!(c.network_policy.unwrap().value, "open");
    assert_eq!(
        c.command.unwrap().value,
        ["python3", "-m", "http.server", "3000"]
    );

    let file = fixture("go-unsupported.yaml");
    let e = load(Path::new("/nowhere"), Some(&file)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5:1: \"dependencies\" is a Go moat key that moat does not support",
            file.display()
        )
    );
}

#[test]
fn bad_yaml_is_placed() {
    let e = parse(Path::new("moat.yaml"), "name: x\nimage: [a\n").unwrap_err();
    assert_eq!(e.file, Path::new("moat.yaml"));
    assert!(e.line >= 2, "{e}");
    assert!(e.message.starts_with("invalid YAML: "), "{e}");
}

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moat-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn load_reads_the_workspace_file_or_the_one_asked_for() {
    let ws = scratch("load");
    assert_eq!(load(&ws, None).unwrap(), None);
    std::fs::write(ws.join(FILE), "image: alpine\nmounts: ['d:/d']\n").unwrap();
    let c = load(&ws, None).unwrap().unwrap();
    assert_eq!(c.file, ws.join(FILE));
    assert_eq!(c.image, Some(s("alpine", 1, 8)));
    assert_eq!(values(&c.mounts), [format!("{}/d:/d", ws.display())]);

    let other = ws.join("other.yaml");
    std::fs::write(&other, "keep: maybe\n").unwrap();
    let e = load(&ws, Some(&other)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:1:7: \"keep\" must be true or false", other.display())
    );

    // Asked for and missing: an error without a place.
    let missing = ws.join("missing.yaml");
    let e = load(&ws, Some(&missing)).unwrap_err();
    assert_eq!((e.line, e.column), (0, 0));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read it: No such file or directory",
            missing.display()
        )
    );

    std::fs::write(&other, b"name: \xff\n").unwrap();
    let e = load(&ws, Some(&other)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: not UTF-8 text", other.display())
    );
    std::fs::remove_dir_all(&ws).unwrap();
}

#[test]
fn later_errors_go_where_the_value_was_written() {
    let c = read("name: x\ntimeout: 5x\n");
    let timeout = c.timeout.as_ref().unwrap();
    let e = c.error(timeout, "invalid --timeout \"5x\": unknown unit");
    assert_eq!(
        e.to_string(),
        "moat.yaml:2:10: invalid --timeout \"5x\": unknown unit"
    );
}
