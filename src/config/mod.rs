//! `moat.yaml`: a project's `moat run` settings.

#[allow(dead_code)]
mod suggest;
#[allow(dead_code)]
mod yaml;
