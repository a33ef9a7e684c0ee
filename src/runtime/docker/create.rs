//! The body of `POST /containers/create`: moat's run (image, command, env, mounts, TTY,
//! labels) and the settings of `docker run`'s flags ([`ContainerOptions`]), in the
//! Engine API's shape, as the docker CLI sends them.

use serde_json::{Map, Value, json};

use crate::runtime::{CreateSpec, Gpus};

/// Labels as the Engine API takes them: a JSON object; a later key wins.
pub fn labels<'a>(pairs: impl IntoIterator<Item = &'a (String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The create call's JSON body for `spec`.
pub fn body(spec: &CreateSpec) -> Value {
    let o = &spec.options;
    let mounts: Vec<Value> = spec
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": "bind",
                "Source": m.source.to_string_lossy(),
                "Target": m.target,
                "ReadOnly": m.read_only,
            })
        })
        .collect();
    // The user's labels first: moat's own, which say which store owns the container,
    // always win.
    let labels = labels(o.labels.iter().chain(&spec.labels));
    let mut host = json!({
        "Init": spec.init,
        "Mounts": mounts,
    });
    let set = |v: &mut Value, key: &str, value: Value| {
        v[key] = value;
    };
    if let Some(network) = &spec.network {
        set(&mut host, "NetworkMode", json!(network));
    }
    for (key, value) in [
        ("Memory", o.memory),
        ("MemorySwap", o.memory_swap),
        ("NanoCpus", o.nano_cpus),
        ("PidsLimit", o.pids_limit),
        ("ShmSize", o.shm_size),
    ] {
        if let Some(value) = value {
            set(&mut host, key, json!(value));
        }
    }
    if !o.ulimits.is_empty() {
        let ulimits: Vec<Value> = o
            .ulimits
            .iter()
            .map(|u| json!({ "Name": u.name, "Soft": u.soft, "Hard": u.hard }))
            .collect();
        set(&mut host, "Ulimits", json!(ulimits));
    }
    let mut exposed = Map::new();
    if !o.publish.is_empty() {
        let mut bindings = Map::new();
        for p in &o.publish {
            let key = format!("{}/{}", p.container_port, p.proto);
            exposed.insert(key.clone(), json!({}));
            let binding = json!({
                "HostIp": p.host_ip,
                "HostPort": p.host_port.map(|h| h.to_string()).unwrap_or_default(),
            });
            match bindings.get_mut(&key) {
                Some(Value::Array(list)) => list.push(binding),
                _ => {
                    bindings.insert(key, json!([binding]));
                }
            }
        }
        set(&mut host, "PortBindings", Value::Object(bindings));
    }
    if o.publish_all {
        set(&mut host, "PublishAllPorts", json!(true));
    }
    for (key, list) in [
        ("ExtraHosts", &o.extra_hosts),
        ("Dns", &o.dns),
        ("CapAdd", &o.cap_add),
        ("CapDrop", &o.cap_drop),
        ("SecurityOpt", &o.security_opt),
    ] {
        if !list.is_empty() {
            set(&mut host, key, json!(list));
        }
    }
    if o.read_only {
        set(&mut host, "ReadonlyRootfs", json!(true));
    }
    if o.privileged {
        set(&mut host, "Privileged", json!(true));
    }
    if !o.tmpfs.is_empty() {
        let tmpfs: Map<String, Value> = o
            .tmpfs
            .iter()
            .map(|(path, opts)| (path.clone(), json!(opts)))
            .collect();
        set(&mut host, "Tmpfs", Value::Object(tmpfs));
    }
    if let Some(gpus) = &o.gpus {
        let request = match gpus {
            Gpus::Count(n) => json!({ "Driver": "", "Count": n, "Capabilities": [["gpu"]] }),
            Gpus::Devices(ids) => {
                json!({ "Driver": "", "DeviceIDs": ids, "Capabilities": [["gpu"]] })
            }
        };
        set(&mut host, "DeviceRequests", json!([request]));
    }

    let mut body = json!({
        "Image": spec.image,
        "Env": spec.env,
        "WorkingDir": spec.workdir,
        "Labels": labels,
        "Tty": spec.tty,
        "OpenStdin": spec.stdin,
        "StdinOnce": spec.stdin,
        "AttachStdin": spec.stdin,
        "AttachStdout": true,
        "AttachStderr": true,
        "HostConfig": host,
    });
    if !spec.command.is_empty() {
        body["Cmd"] = json!(spec.command);
    }
    if let Some(user) = &spec.user {
        body["User"] = json!(user);
    }
    if let Some(entrypoint) = &o.entrypoint {
        // An empty list resets the image's entrypoint, as `--entrypoint ""` does.
        body["Entrypoint"] = json!(entrypoint);
    }
    if let Some(hostname) = &o.hostname {
        body["Hostname"] = json!(hostname);
    }
    if !exposed.is_empty() {
        body["ExposedPorts"] = Value::Object(exposed);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerOptions, PortBinding, Ulimit};

    fn spec(options: ContainerOptions) -> CreateSpec {
        CreateSpec {
            name: "run_1".into(),
            image: "img".into(),
            command: vec!["true".into()],
            env: vec![],
            mounts: vec![],
            workdir: "/workspace".into(),
            labels: vec![("moat.managed".into(), "true".into())],
            init: true,
            tty: false,
            tty_size: None,
            stdin: false,
            network: None,
            user: None,
            options,
        }
    }

    #[test]
    fn no_flags_leave_the_engine_defaults() {
        let body = body(&spec(ContainerOptions::default()));
        let host = body["HostConfig"].as_object().unwrap();
        let keys: Vec<&str> = host.keys().map(String::as_str).collect();
        assert_eq!(keys, ["Init", "Mounts"]);
        assert!(body.get("Entrypoint").is_none() && body.get("ExposedPorts").is_none());
    }

    #[test]
    fn flags_reach_the_engine_in_its_shape() {
        let body = body(&spec(ContainerOptions {
            memory: Some(1 << 30),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(64),
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 512,
                hard: 1024,
            }],
            publish: vec![
                PortBinding {
                    container_port: 80,
                    proto: "tcp".into(),
                    host_ip: "127.0.0.1".into(),
                    host_port: Some(8080),
                },
                PortBinding {
                    container_port: 80,
                    proto: "tcp".into(),
                    host_ip: String::new(),
                    host_port: None,
                },
            ],
            entrypoint: Some(vec![]),
            labels: vec![
                ("team".into(), "a".into()),
                ("moat.managed".into(), "no".into()),
            ],
            tmpfs: vec![("/scratch".into(), "size=1m".into())],
            gpus: Some(Gpus::Count(-1)),
            ..ContainerOptions::default()
        }));
        let host = &body["HostConfig"];
        assert_eq!(host["Memory"], 1 << 30);
        assert_eq!(host["NanoCpus"], 1_500_000_000i64);
        assert_eq!(host["PidsLimit"], 64);
        assert_eq!(host["Ulimits"][0]["Name"], "nofile");
        assert_eq!(
            host["PortBindings"]["80/tcp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "", "HostPort": ""}])
        );
        assert_eq!(body["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(body["Entrypoint"], json!([]));
        assert_eq!(body["Labels"]["team"], "a");
        assert_eq!(body["Labels"]["moat.managed"], "true", "moat's labels win");
        assert_eq!(host["Tmpfs"]["/scratch"], "size=1m");
        assert_eq!(host["DeviceRequests"][0]["Count"], -1);
    }
}
