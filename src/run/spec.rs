//! What the user asked `moat run` to do, and the container that follows from it.

use std::path::PathBuf;
use std::time::Duration;

use crate::runtime::{ContainerOptions, CreateSpec, Kind, Mount};
use crate::workspace::{self, Ignore, Mode};

/// What the user asked `moat run` to do.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub workspace: Workspace,
    pub image: String,
    pub name: Option<String>,
    /// Variables for the container: (name, value). Values never reach the disk.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub workdir: String,
    pub keep: bool,
    pub init: bool,
    pub interactive: bool,
    pub stop_timeout: Duration,
    pub timeout: Option<Duration>,
    pub network: Option<String>,
    /// `--network-policy strict`: the hosts the run may reach through its proxy, and
    /// nothing else. `None`: the network is open.
    pub allow: Option<Vec<crate::sandbox::allow::Rule>>,
    pub command: Vec<String>,
    pub runtime: Kind,
    /// The agent preset this run is for (`moat claude`...): announced on start as
    /// `Started agent "NAME" (ID)`.
    pub agent: Option<&'static str>,
    /// The user the command runs as (`UID[:GID]` or a name); the image's own when unset.
    pub user: Option<String>,
    /// How `image` is made when it is missing: moat builds it (an agent's image).
    pub build: Option<Build>,
    /// The settings of `docker run`'s flags.
    pub options: ContainerOptions,
    /// When to pull the image (`--pull`).
    pub pull: Pull,
}

/// `--pull`: when the image is pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pull {
    /// Only when it is not present (the default).
    #[default]
    Missing,
    Always,
    /// Never: a missing image fails the run.
    Never,
}

/// An image moat builds before the run, from its recipe.
#[derive(Debug, Clone)]
pub struct Build {
    pub recipe: crate::image::Recipe,
    /// Build even when an image with the recipe's tag exists (`--rebuild`).
    pub rebuild: bool,
}

/// The workspace, and how it reaches the container.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The host directory (absolute).
    pub path: PathBuf,
    pub mode: Mode,
    /// `--workspace` chose the mode; else it is the engine's default.
    pub chosen: bool,
    /// Write back what the run added or changed (`--copy-back`, copy only).
    pub copy_back: bool,
    /// What a copy leaves out (`.moatignore`); empty unless copying.
    pub ignore: Ignore,
}

impl RunSpec {
    /// The container for run `id` of the store at `home`: the workspace first (when it
    /// is bind-mounted), moat's labels so that every store reaps only its own.
    pub fn container(&self, id: &str, home: &str, tty: bool, stdin: bool) -> CreateSpec {
        let mut env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.dedup();
        let mut mounts = Vec::new();
        if self.workspace.mode == Mode::Bind {
            mounts.push(Mount {
                source: self.workspace.path.clone(),
                target: workspace::TARGET.into(),
                read_only: false,
            });
        }
        mounts.extend(self.mounts.iter().cloned());
        CreateSpec {
            name: id.to_string(),
            image: self.image.clone(),
            command: self.command.clone(),
            env,
            mounts,
            workdir: self.workdir.clone(),
            labels: vec![
                ("moat.run_id".into(), id.to_string()),
                ("moat.managed".into(), "true".into()),
                ("moat.home".into(), home.to_string()),
            ],
            init: self.init,
            tty,
            tty_size: None,
            stdin,
            network: self.network.clone(),
            user: self.user.clone(),
            options: self.options.clone(),
        }
    }
}
