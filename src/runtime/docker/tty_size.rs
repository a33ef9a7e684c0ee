//! A TTY with its size from the command's first instruction, on a Docker engine.
//!
//! dockerd before API 1.42 (Docker 23) cannot size a TTY before the start: it refuses a
//! resize until the container runs, and `ConsoleSize` at create came with 1.42. So a
//! command that asks at once (`stty size`, a full-screen program's first frame) would see
//! 0x0, as under `docker run -it`. moat starts such a command through a step of its own
//! binary: `/.moat/moat __tty-size ROWS COLS -- COMMAND...` sets the size on the TTY and
//! execs the command, which then runs as if started directly (same PID, environment and
//! init). An engine that sees this machine's files gets the binary bind-mounted read-only;
//! a remote one gets it copied in before the start. Podman sizes a TTY before the start,
//! so it needs no step.
//!
//! Where the step cannot run (a moat that is not a static Linux executable for the
//! engine's architecture, a remote engine with `--read-only`, an image with no command),
//! the run starts as before and is sized right after the start.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::Client;
use super::network;
use crate::error::Error as CliError;
use crate::io_reason::io_reason;
use crate::own_binary;
use crate::runtime::CreateSpec;

/// The hidden command the step is; not in the help.
pub const COMMAND: &str = "__tty-size";

/// Where the step's binary is in the container: a directory of moat's own, which no image
/// is expected to have.
const DIR: &str = ".moat";
const BINARY: &str = "/.moat/moat";

/// What a TTY container starts with instead of its command.
pub struct Step {
    size: (u16, u16),
    /// The command the container would run: the engine's merge of the image's entrypoint
    /// and command with the run's.
    command: Vec<String>,
    /// The binary on this machine, and whether the engine binds it (else it is copied in).
    binary: PathBuf,
    bind: bool,
}

/// The step `spec` starts with on this engine, or `None` when it needs none or cannot run
/// one (the reason goes to the debug log).
pub fn plan(client: &Client, spec: &CreateSpec) -> Option<Step> {
    let size = spec.tty_size.filter(|_| spec.tty)?;
    let skip = |why: String| {
        log::debug!("the TTY is sized after the start: {why}");
        None
    };
    let bind = client.dialer().endpoint().sees_host_files();
    if !bind && spec.options.read_only {
        return skip("a remote engine cannot copy into a read-only root".into());
    }
    let (binary, head) = match own_binary::head() {
        Ok(found) => found,
        Err(e) => return skip(e),
    };
    let platform = if bind {
        own_binary::host_platform()
    } else {
        match network::platform(client) {
            Ok(p) => p,
            Err(e) => return skip(e.to_string()),
        }
    };
    if let Err(why) = own_binary::runs_alone_on(&head, &platform) {
        return skip(why);
    }
    let image = match image_config(client, &spec.image) {
        Ok(Some(config)) => config,
        // A missing image is the create call's to report (and the run's to pull).
        Ok(None) => return skip(format!("image {} is not here yet", spec.image)),
        Err(e) => return skip(e.to_string()),
    };
    let command = merged_command(spec, image);
    if command.is_empty() {
        return skip("no command to run (the engine says so at create)".into());
    }
    Some(Step {
        size,
        command,
        binary,
        bind,
    })
}

impl Step {
    /// Make the create call's `body` start the step, with the binary bound when it is.
    pub fn apply(&self, body: &mut Value) {
        let (rows, cols) = self.size;
        body["Entrypoint"] = json!([BINARY, COMMAND, rows.to_string(), cols.to_string(), "--"]);
        body["Cmd"] = json!(self.command);
        if self.bind {
            let mount = json!({
                "Type": "bind",
                "Source": self.binary.to_string_lossy(),
                "Target": BINARY,
                "ReadOnly": true,
            });
            match body["HostConfig"]["Mounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount),
                None => body["HostConfig"]["Mounts"] = json!([mount]),
            }
        }
    }

    /// The archive to copy into the created container's `/`, when the engine does not
    /// bind the binary: `.moat/moat`, owned by root and executable by every user.
    pub fn archive(&self) -> io::Result<Option<Box<dyn Read + Send>>> {
        if self.bind {
            return Ok(None);
        }
        let file = File::open(&self.binary)?;
        let len = file.metadata()?.len();
        let mut tar = tar::Builder::new(Vec::new());
        for (path, kind, size) in [
            (&format!("{DIR}/"), tar::EntryType::Directory, 0),
            (&format!("{DIR}/moat"), tar::EntryType::Regular, len),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(kind);
            header.set_size(size);
            header.set_mode(0o755);
            tar.append_data(&mut header, path, (&file).take(size))?;
        }
        Ok(Some(Box::new(io::Cursor::new(tar.into_inner()?))))
    }
}

/// Whether a process's command line (as `top` shows it) is the step before it has exec'd
/// the command: a stop waits for the command itself.
pub fn is_step(cmd: &str) -> bool {
    cmd.split_whitespace().take(2).eq([BINARY, COMMAND])
}

/// `moat __tty-size ROWS COLS -- COMMAND...`, inside the container: size the TTY unless
/// the engine already did, then become the command. A command that cannot be exec'd ends
/// the step with 127 (not found) or 126, with the reason, as Docker's init does.
pub fn main(args: Vec<OsString>) -> crate::error::Result<i32> {
    let usage = || CliError::usage("moat", "usage: moat __tty-size ROWS COLS -- COMMAND...");
    let [rows, cols, dashes, program, args @ ..] = args.as_slice() else {
        return Err(usage());
    };
    let number = |n: &OsString| n.to_str().and_then(|n| n.parse::<u16>().ok());
    let (Some(rows), Some(cols)) = (number(rows), number(cols)) else {
        return Err(usage());
    };
    if dashes != "--" {
        return Err(usage());
    }
    size_unsized_tty(rows, cols);
    let e = std::process::Command::new(program).args(args).exec();
    let code = if e.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    // The TTY is all the command's output has: say it there, as Docker's init would.
    let _ = writeln!(
        io::stderr(),
        "moat: exec {} failed: {}",
        program.to_string_lossy(),
        io_reason(&e)
    );
    Ok(code)
}

/// Give the container's TTY (the first of stdin, stdout, stderr that is one) the size
/// `rows` x `cols`, unless it has one: then the engine's resize after the start came
/// first, and it is the newer size.
fn size_unsized_tty(rows: u16, cols: u16) {
    for fd in 0..=2 {
        // SAFETY: TIOCGWINSZ and TIOCSWINSZ read and write a winsize struct we own.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 {
            continue;
        }
        if ws.ws_row == 0 && ws.ws_col == 0 {
            ws.ws_row = rows;
            ws.ws_col = cols;
            unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
        }
        return;
    }
}

/// The part of an image's config that says what a container of it runs.
#[derive(Deserialize, Default)]
struct ImageConfig {
    #[serde(rename = "Entrypoint")]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd")]
    cmd: Option<Vec<String>>,
}

fn image_config(client: &Client, image: &str) -> crate::runtime::Result<Option<ImageConfig>> {
    #[derive(Deserialize)]
    struct Image {
        #[serde(rename = "Config")]
        config: Option<ImageConfig>,
    }
    let Some(body) = super::inspect_image(client, image)? else {
        return Ok(None);
    };
    let image: Image = serde_json::from_slice(&body).map_err(|e| {
        crate::runtime::Error::new(
            crate::runtime::ErrorKind::Other,
            format!("looking up image {image}"),
            format!("unexpected answer: {e}"),
        )
    })?;
    Ok(Some(image.config.unwrap_or_default()))
}

/// The command line a container of `image` runs for `spec`, merged as the engine merges
/// them: a run's own entrypoint drops the image's command; an empty one (`--entrypoint
/// ""`) drops the image's entrypoint only; the run's command replaces the image's.
fn merged_command(spec: &CreateSpec, image: ImageConfig) -> Vec<String> {
    let (entrypoint, cmd) = match &spec.options.entrypoint {
        Some(own) if !own.is_empty() => (own.clone(), spec.command.clone()),
        own => {
            let cmd = if spec.command.is_empty() {
                image.cmd.unwrap_or_default()
            } else {
                spec.command.clone()
            };
            let entrypoint = match own {
                Some(_) => Vec::new(),
                None => image.entrypoint.unwrap_or_default(),
            };
            (entrypoint, cmd)
        }
    };
    entrypoint.into_iter().chain(cmd).collect()
}

#[cfg(test)]
mod tests {
    use super::{ImageConfig, Step, is_step, merged_command};
    use crate::runtime::{ContainerOptions, CreateSpec};
    use serde_json::json;

    fn spec(command: &[&str], entrypoint: Option<&[&str]>) -> CreateSpec {
        CreateSpec {
            name: "run_x".into(),
            image: "img".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            mounts: vec![],
            workdir: "/".into(),
            labels: vec![],
            init: true,
            tty: true,
            tty_size: Some((33, 101)),
            stdin: true,
            network: None,
            user: None,
            options: ContainerOptions {
                entrypoint: entrypoint.map(|e| e.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        }
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        let list = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
        ImageConfig {
            entrypoint: list(entrypoint),
            cmd: list(cmd),
        }
    }

    /// The run's command, its entrypoint, and the command line the container runs.
    type Case<'a> = (&'a [&'a str], Option<&'a [&'a str]>, &'a [&'a str]);

    #[test]
    fn the_command_is_merged_as_the_engine_merges_it() {
        let cases: [Case; 5] = [
            // The image's entrypoint and command.
            (&[], None, &["ep", "a", "cmd"]),
            // The run's command replaces the image's.
            (&["sh"], None, &["ep", "a", "sh"]),
            // The run's entrypoint drops the image's command.
            (&[], Some(&["top"]), &["top"]),
            (&["-b"], Some(&["top"]), &["top", "-b"]),
            // `--entrypoint ""` drops the image's entrypoint only.
            (&[], Some(&[]), &["cmd"]),
        ];
        for (command, entrypoint, want) in cases {
            let got = merged_command(&spec(command, entrypoint), image(&["ep", "a"], &["cmd"]));
            assert_eq!(got, want, "command {command:?}, entrypoint {entrypoint:?}");
        }
        assert!(merged_command(&spec(&[], None), image(&[], &[])).is_empty());
    }

    #[test]
    fn the_step_runs_the_command_and_a_bound_binary_joins_the_mounts() {
        let step = Step {
            size: (33, 101),
            command: vec!["sh".into()],
            binary: "/usr/bin/moat".into(),
            bind: true,
        };
        let mut body = json!({ "HostConfig": { "Mounts": [{ "Target": "/workspace" }] } });
        step.apply(&mut body);
        assert_eq!(
            body["Entrypoint"],
            json!(["/.moat/moat", "__tty-size", "33", "101", "--"])
        );
        assert_eq!(body["Cmd"], json!(["sh"]));
        assert_eq!(body["HostConfig"]["Mounts"][1]["Source"], "/usr/bin/moat");
        assert_eq!(body["HostConfig"]["Mounts"][1]["ReadOnly"], true);
        assert!(is_step("/.moat/moat __tty-size 33 101 -- sh"));
        assert!(!is_step("sh -c /.moat/moat __tty-size"));
    }

    #[test]
    fn a_copied_binary_is_one_tar_entry_under_its_directory() {
        let own = std::env::current_exe().unwrap();
        let step = Step {
            size: (24, 80),
            command: vec!["sh".into()],
            binary: own.clone(),
            bind: false,
        };
        let mut archive = tar::Archive::new(step.archive().unwrap().unwrap());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        let len = std::fs::metadata(&own).unwrap().len();
        assert_eq!(
            entries,
            [
                (".moat/".to_string(), 0o755, 0),
                (".moat/moat".to_string(), 0o755, len)
            ]
        );
    }
}
