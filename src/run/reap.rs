//! Reaping: removing finished runs with whatever container they left (`moat clean`,
//! `moat destroy`), and the containers of this store that no run owns.
//!
//! The rule: the container of a live run is never removed. A run is recorded before its
//! container is made, so `clean` lists the containers first and looks in the store after:
//! every container it listed already has its run on disk, however many runs start
//! meanwhile. A container without a run in the store is an orphan only once it is older
//! than [`YOUNG_CONTAINER_GRACE`], and each run is checked again under its lock, owner
//! gone, right before anything of it is removed. A finished run's container goes only with
//! its run, so `--older-than` keeps the `--keep` containers of the runs it keeps.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::reconcile::{self, Listed};
use super::stop;
use crate::error::{Error, Result};
use crate::runtime::{Connections, Kind, ManagedContainer, Runtime};
use crate::sandbox;
use crate::store::{self, Record, Store};
use crate::{term, time};

/// How old a container must be before `clean` takes it for an orphan when its run is not
/// in the store. A run's record is written before its container is made, so such a
/// container is nearly always an orphan; the grace covers a record still on its way (a
/// slow disk, an fsync under load) and a small difference between the engine's clock and
/// ours, and is short enough that the next `clean` reaps what a crash left behind.
pub const YOUNG_CONTAINER_GRACE: Duration = Duration::from_secs(10);

/// A container `clean` removes.
pub struct Container {
    runtime: Arc<dyn Runtime>,
    pub id: String,
    /// The run its `moat.run_id` label names, if it has one.
    pub run_id: Option<String>,
    /// It belongs to a finished run being removed (and goes with it), rather than to no
    /// run of this store.
    with_run: bool,
}

/// A network `clean` removes: a strict run's, whose run is being removed or is not in
/// the store. It goes after the containers (a network is removed only once none is on it).
pub struct Network {
    runtime: Arc<dyn Runtime>,
    pub id: String,
    pub run_id: Option<String>,
    with_run: bool,
}

/// What `clean` removes: finished runs, and containers and networks (of those runs, or
/// of no run).
pub struct Plan {
    pub runs: Vec<Record>,
    pub containers: Vec<Container>,
    pub networks: Vec<Network>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.containers.is_empty() && self.networks.is_empty()
    }
}

/// Something [`clean`] has removed.
pub enum Removed<'a> {
    Container(&'a Container),
    Network(&'a Network),
    Run(&'a Record),
}

/// What `clean` would remove: the finished runs that ended longer than `older_than` ago
/// (every finished run without it), their containers, and the containers of this store
/// whose run it does not hold. Live runs and unreadable run directories are left alone.
pub fn plan(
    store: &Store,
    conns: &mut Connections,
    older_than: Option<Duration>,
) -> store::Result<Plan> {
    let now = SystemTime::now();
    let mut runs = Vec::new();
    // Only the engines that runs name are asked (each where the run found it), and the
    // default one always.
    let mut engines = vec![Engine::default()];
    for entry in reconcile::check_all(store, conns)? {
        match entry {
            Listed::Run(checked) => {
                let record = checked.record;
                let engine = Engine::of(&record);
                if !engines.contains(&engine) {
                    engines.push(engine);
                }
                if record.state.is_final() && ended_before(&record, older_than, now) {
                    runs.push(record);
                }
            }
            Listed::Corrupt { dir, why } => {
                term::warn(format_args!(
                    "leaving corrupt run directory {dir} alone ({why})"
                ));
            }
        }
    }
    let mut listed = Vec::new();
    let mut networks: Vec<Network> = Vec::new();
    for engine in &engines {
        for (runtime, n) in networks_of(store, conns, engine) {
            let run = n.run_id.as_deref().filter(|id| store::id::is_run_id(id));
            let with_run = run.is_some_and(|id| runs.iter().any(|r| r.id == id));
            // A network is made after its run's record: without the run, it is left over.
            if (with_run || !run.is_some_and(|id| run_on_disk(store, id)))
                && !networks.iter().any(|l| l.id == n.id)
            {
                networks.push(Network {
                    runtime,
                    id: n.id,
                    run_id: n.run_id,
                    with_run,
                });
            }
        }
    }
    for engine in engines {
        for (runtime, c) in list_ours(store, conns, &engine) {
            // Two names for one engine (the default and a recorded endpoint) list the
            // same containers.
            if !listed
                .iter()
                .any(|(_, l): &(_, ManagedContainer)| l.id == c.id)
            {
                listed.push((runtime, c));
            }
        }
    }
    // Only now the store again (see the module's doc): after the listing, a run that is
    // not on disk is one that was never there or is gone, not one being created.
    let now = SystemTime::now();
    let containers = listed
        .into_iter()
        .filter_map(|(runtime, c)| classify(store, &runs, runtime, c, now))
        .collect();
    Ok(Plan {
        runs,
        containers,
        networks,
    })
}

/// An engine runs were made on: the runtime, and the endpoint where it was found
/// (`None`: where the environment says).
#[derive(Default, PartialEq)]
struct Engine {
    runtime: Option<String>,
    endpoint: Option<serde_json::Value>,
}

impl Engine {
    fn of(record: &Record) -> Engine {
        Engine {
            runtime: Some(record.runtime.clone()),
            endpoint: record.endpoint.clone(),
        }
    }

    fn connect(&self, conns: &mut Connections) -> crate::runtime::Result<Arc<dyn Runtime>> {
        match &self.runtime {
            None => conns.get(Kind::auto()),
            Some(runtime) => conns.for_record(runtime, self.endpoint.as_ref()),
        }
    }

    fn name(&self) -> String {
        let runtime = self.runtime.as_deref().unwrap_or(Kind::auto().as_str());
        match self.endpoint.as_ref().and_then(|e| e.get("url")) {
            Some(url) => format!("{runtime} ({})", url.as_str().unwrap_or("?")),
            None => runtime.to_string(),
        }
    }
}

/// The containers on `engine` made by this store, or none (with a warning) when the
/// engine cannot be asked.
fn list_ours(
    store: &Store,
    conns: &mut Connections,
    engine: &Engine,
) -> Vec<(Arc<dyn Runtime>, ManagedContainer)> {
    let listed = engine
        .connect(conns)
        .and_then(|rt| Ok((rt.list_managed()?, rt)));
    let (list, runtime) = match listed {
        Ok(found) => found,
        Err(e) => {
            term::warn(format_args!(
                "not reaping {} containers: {e}",
                engine.name()
            ));
            return Vec::new();
        }
    };
    let home = store.root().to_string_lossy().into_owned();
    list.into_iter()
        // Another store's containers (another MOAT_HOME) are its own business.
        .filter(|c| c.home.as_deref().is_none_or(|h| h == home))
        .map(|c| (runtime.clone(), c))
        .collect()
}

/// The networks on `engine` made by this store (none, told, when it cannot be asked).
fn networks_of(
    store: &Store,
    conns: &mut Connections,
    engine: &Engine,
) -> Vec<(Arc<dyn Runtime>, crate::runtime::ManagedNetwork)> {
    let home = store.root().to_string_lossy().into_owned();
    match engine
        .connect(conns)
        .and_then(|rt| Ok((rt.list_networks(None)?, rt)))
    {
        Ok((list, rt)) => list
            .into_iter()
            .filter(|n| n.home.as_deref() == Some(home.as_str()))
            .map(|n| (rt.clone(), n))
            .collect(),
        Err(e) => {
            log::debug!("not reaping {} networks: {e}", engine.name());
            Vec::new()
        }
    }
}

/// Whether `clean` removes the listed container `c`, and how.
fn classify(
    store: &Store,
    runs: &[Record],
    runtime: Arc<dyn Runtime>,
    c: ManagedContainer,
    now: SystemTime,
) -> Option<Container> {
    let run = c.run_id.as_deref().filter(|id| store::id::is_run_id(id));
    let with_run = run.is_some_and(|id| runs.iter().any(|r| r.id == id));
    if !with_run {
        // A run of the store (live, too recent for --older-than, unreadable) keeps it.
        if run.is_some_and(|id| run_on_disk(store, id)) {
            return None;
        }
        let young = c.created.is_some_and(|t| {
            now.duration_since(t)
                .map_or(true, |age| age < YOUNG_CONTAINER_GRACE)
        });
        if young {
            log::debug!("leaving young container {} alone", c.id);
            return None;
        }
    }
    Some(Container {
        runtime,
        id: c.id,
        run_id: c.run_id,
        with_run,
    })
}

/// Whether run `id` has a directory in the store (an error other than "not found" says
/// it may have: it is left alone).
fn run_on_disk(store: &Store, id: &str) -> bool {
    !matches!(store.dir(id).symlink_metadata(), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// Remove what `plan` holds, telling each removal to `tell`; failures are warned and
/// make the result 1 (everything else is still removed).
pub fn clean(store: &Store, plan: &Plan, mut tell: impl FnMut(Removed)) -> i32 {
    let mut code = 0;
    for record in &plan.runs {
        let own = plan
            .containers
            .iter()
            .filter(|c| c.with_run && c.run_id.as_deref() == Some(&record.id));
        let nets = plan
            .networks
            .iter()
            .filter(|n| n.with_run && n.run_id.as_deref() == Some(&record.id));
        if let Err(e) = remove_run(store, record, own, nets, &mut tell) {
            term::warn(e);
            code = 1;
        }
    }
    for c in plan.containers.iter().filter(|c| !c.with_run) {
        // A run of the store that has appeared since (it cannot, its record comes first;
        // but this is the last look before a removal) keeps it.
        let claimed = c
            .run_id
            .as_deref()
            .filter(|id| store::id::is_run_id(id))
            .is_some_and(|id| run_on_disk(store, id));
        if claimed {
            continue;
        }
        match c.runtime.remove(&c.id) {
            Ok(()) => tell(Removed::Container(c)),
            Err(e) => {
                term::warn(e);
                code = 1;
            }
        }
    }
    for n in plan.networks.iter().filter(|n| !n.with_run) {
        match n.runtime.remove_network(&n.id) {
            Ok(()) => tell(Removed::Network(n)),
            Err(e) => {
                term::warn(e);
                code = 1;
            }
        }
    }
    code
}

/// Remove a finished run and its containers, under the run's lock, after checking once
/// more that it is finished and its owner gone (an owner still cleaning up keeps it).
fn remove_run<'a>(
    store: &Store,
    record: &'a Record,
    containers: impl Iterator<Item = &'a Container>,
    networks: impl Iterator<Item = &'a Network>,
    tell: &mut impl FnMut(Removed<'a>),
) -> Result<()> {
    if !run_on_disk(store, &record.id) {
        // Removed by someone else meanwhile.
        return Ok(());
    }
    let _lock = store.lock_metadata(&record.id)?;
    let now = store.read(&record.id)?;
    if !now.state.is_final() || store.owner_alive(&now) {
        log::debug!("run {} is not done with yet; leaving it", record.id);
        return Ok(());
    }
    for c in containers {
        c.runtime.remove(&c.id)?;
        tell(Removed::Container(c));
    }
    for n in networks {
        n.runtime.remove_network(&n.id)?;
        tell(Removed::Network(n));
    }
    store.remove(&record.id)?;
    tell(Removed::Run(record));
    Ok(())
}

/// Whether the run ended longer ago than `older_than` (any finished run without a limit).
fn ended_before(record: &Record, older_than: Option<Duration>, now: SystemTime) -> bool {
    let Some(limit) = older_than else {
        return true;
    };
    let ended = record
        .stopped_at
        .as_deref()
        .or(Some(record.created_at.as_str()))
        .and_then(time::parse_rfc3339);
    ended.is_some_and(|t| now.duration_since(t).is_ok_and(|age| age >= limit))
}

/// Remove one run (`moat destroy`): its record, logs and any container it left. A live run
/// is refused unless `force`, which stops it first. Gives the final record back.
pub fn destroy(
    store: &Store,
    conns: &mut Connections,
    record: Record,
    force: bool,
) -> Result<Record> {
    let checked = reconcile::check(store, conns, record);
    let state = checked.state_text();
    let mut record = checked.record;
    if !record.state.is_final() {
        if !force {
            return Err(Error::failed(format!(
                "run {} is {state}; stop it first or use destroy -f",
                record.id,
            )));
        }
        record = match stop::stop(store, conns, &record, Duration::from_secs(10))? {
            stop::Stopped::Now(r) | stop::Stopped::Already(r) => r,
        };
    }
    let _lock = store.lock_metadata(&record.id)?;
    // The owner removes its container at the end unless the run keeps it; a kept one, or
    // one left by a failure, goes now.
    if record.keep || record.error.is_some() || record.is_strict() {
        match conns.for_record(&record.runtime, record.endpoint.as_ref()) {
            Ok(rt) => {
                if let Some(container) = leftover(&*rt, &record)? {
                    rt.remove(&container)?;
                }
                if record.is_strict() {
                    sandbox::tear_down(&*rt, &record.id, false, None)?;
                }
            }
            Err(e) if record.keep => return Err(e.into()),
            // A failed run may never have had a container: no runtime, nothing to remove.
            Err(_) => {}
        }
    }
    store.remove(&record.id)?;
    Ok(record)
}

/// The container a finished run may have left: the recorded one, else one carrying the
/// run's label (made before its ID reached the record).
fn leftover(rt: &dyn Runtime, record: &Record) -> Result<Option<String>> {
    Ok(match &record.container_id {
        Some(c) => Some(c.clone()),
        None => rt.find_by_run_id(&record.id)?,
    })
}
