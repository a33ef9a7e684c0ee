//! The network sandbox of `--network-policy strict`: [`allow`] says which hosts a run may
//! reach, [`proxy`] is the egress proxy (`moat __proxy`) that lets through only those.

pub mod allow;
pub mod proxy;
