//! What the user asked `moat run` to do, and the container that follows from it.

use std::path::PathBuf;
use std::time::Duration;

use crate::runtime::{CreateSpec, Kind, Mount};

/// What the user asked `moat run` to do.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Host directory mounted at `/workspace` (absolute).
    pub workspace: PathBuf,
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
    pub command: Vec<String>,
    pub runtime: Kind,
    /// The agent preset this run is for (`moat claude`...): announced on start as
    /// `Started agent "NAME" (ID)`.
    pub agent: Option<&'static str>,
}

impl RunSpec {
    /// The container for run `id` of the store at `home`: the workspace first, moat's
    /// labels so that every store reaps only its own.
    pub fn container(&self, id: &str, home: &str, tty: bool, stdin: bool) -> CreateSpec {
        let mut env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.dedup();
        let mut mounts = vec![Mount {
            source: self.workspace.clone(),
            target: "/workspace".into(),
            read_only: false,
        }];
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
            stdin,
            network: self.network.clone(),
        }
    }
}
