//! Making sure a recipe's image exists: found by its tag, else built through the runtime.
//! The builder's output is followed line by line: which step of how many it is on, and
//! the last lines, so progress can be shown and a failure told with what led to it.

use std::collections::VecDeque;
use std::fmt;

use super::Recipe;
use crate::runtime::{self, Runtime};

/// How many of the builder's last lines a failure shows.
pub const TAIL_LINES: usize = 12;

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// An image with the recipe's tag was there: nothing was built.
    Found,
    Built,
}

/// Where the build stands, for whoever shows it.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// The step being run, `(n, of)`, once the builder has named one.
    pub step: Option<(u32, u32)>,
    /// The step's instruction (`RUN npm install ...`).
    pub instruction: String,
    /// The builder's last lines, newest last.
    pub tail: VecDeque<String>,
}

impl Progress {
    /// Take one line of the builder's output.
    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end();
        if line.trim().is_empty() {
            return;
        }
        if let Some((n, of, instruction)) = parse_step(line) {
            self.step = Some((n, of));
            self.instruction = instruction.to_string();
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
    }

    /// `step 3/7`, or `starting` before the builder named a step.
    pub fn step_text(&self) -> String {
        match self.step {
            Some((n, of)) => format!("step {n}/{of}"),
            None => "starting".into(),
        }
    }
}

/// `Step 3/7 : RUN x` (Docker's classic builder) or `STEP 3/7: RUN x` (Podman's):
/// `(3, 7, "RUN x")`.
fn parse_step(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.strip_prefix("Step ").or(line.strip_prefix("STEP "))?;
    let (count, instruction) = rest.split_once(':')?;
    let (n, of) = count.trim().split_once('/')?;
    Some((n.parse().ok()?, of.parse().ok()?, instruction.trim()))
}

/// A build that did not produce its image: the step it failed at, the builder's last
/// lines, and its error. No image was tagged.
#[derive(Debug)]
pub struct BuildFailed {
    pub tag: String,
    pub progress: Progress,
    pub error: runtime::Error,
}

impl fmt::Display for BuildFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.progress.step {
            Some((n, of)) => write!(
                f,
                "building image {} failed at step {n}/{of} ({}): {}",
                self.tag,
                shortened(&self.progress.instruction),
                why(&self.error.detail)
            ),
            None => write!(f, "building image {}: {}", self.tag, self.error),
        }
    }
}

/// An instruction as long as a line can hold.
fn shortened(instruction: &str) -> String {
    const MAX: usize = 72;
    let words: Vec<&str> = instruction.split_whitespace().collect();
    let one_line = words.join(" ");
    if one_line.chars().count() <= MAX {
        return one_line;
    }
    let cut: String = one_line.chars().take(MAX - 3).collect();
    format!("{cut}...")
}

/// The builder's error without the instruction it repeats: Docker's classic builder says
/// `The command '/bin/sh -c ...' returned a non-zero code: N`.
fn why(detail: &str) -> String {
    match detail.rsplit_once("returned a non-zero code: ") {
        Some((before, code)) if before.contains("The command ") => {
            format!("the command exited with {code}")
        }
        _ => detail.to_string(),
    }
}

/// Make sure the recipe's image exists: when an image with its tag is there (and
/// `rebuild` is not asked), nothing is built. Each line the builder prints is taken into
/// a [`Progress`] and handed to `show`.
pub fn ensure(
    runtime: &dyn Runtime,
    recipe: &Recipe,
    rebuild: bool,
    mut show: impl FnMut(&Progress, &str),
) -> Result<Ensured, Box<BuildFailed>> {
    let tag = recipe.tag();
    let mut progress = Progress::default();
    let failed = |progress: Progress, error| {
        Box::new(BuildFailed {
            tag: tag.clone(),
            progress,
            error,
        })
    };
    if !rebuild {
        match runtime.image_exists(&tag) {
            Ok(true) => return Ok(Ensured::Found),
            Ok(false) => {}
            Err(e) => return Err(failed(progress, e)),
        }
    }
    let built = runtime.build(
        &tag,
        &recipe.labels(),
        recipe.context(),
        &mut |line: &str| {
            progress.feed(line);
            show(&progress, line);
        },
    );
    match built {
        Ok(()) => Ok(Ensured::Built),
        Err(e) => Err(failed(progress, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_read_from_both_builders() {
        assert_eq!(
            parse_step("Step 3/7 : RUN npm install -g x"),
            Some((3, 7, "RUN npm install -g x"))
        );
        assert_eq!(
            parse_step("STEP 1/7: FROM node:22"),
            Some((1, 7, "FROM node:22"))
        );
        assert_eq!(parse_step(" ---> Running in 1234"), None);
        assert_eq!(parse_step("Step x/7 : RUN"), None);
    }

    #[test]
    fn a_failure_names_the_step_without_repeating_it() {
        let long = format!("RUN {}", "x ".repeat(60));
        assert!(shortened(&long).ends_with("...") && shortened(&long).len() == 72);
        assert_eq!(shortened("RUN  a \\\n  && b"), "RUN a \\ && b");
        assert_eq!(
            why("The command '/bin/sh -c npm i' returned a non-zero code: 1"),
            "the command exited with 1"
        );
        assert_eq!(
            why("Error: The command '/bin/sh -c x' returned a non-zero code: 3"),
            "the command exited with 3"
        );
        assert_eq!(why("exit status 1"), "exit status 1");
    }

    #[test]
    fn progress_keeps_the_step_and_the_last_lines() {
        let mut p = Progress::default();
        assert_eq!(p.step_text(), "starting");
        p.feed("Step 2/5 : RUN make\n");
        p.feed("\n");
        for i in 0..20 {
            p.feed(&format!("line {i}"));
        }
        assert_eq!(p.step_text(), "step 2/5");
        assert_eq!(p.instruction, "RUN make");
        assert_eq!(p.tail.len(), TAIL_LINES);
        assert_eq!(p.tail.back().map(String::as_str), Some("line 19"));
    }
}
