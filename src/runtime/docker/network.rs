//! Networks (`/networks`): a strict run's internal network, and the engine's platform the
//! proxy's image must be built for.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{CALL_DEADLINE, Client, encode};
use crate::runtime::{Error, ErrorKind, Kind, ManagedNetwork, Result};

fn unexpected(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Other, what, format!("unexpected answer: {e}"))
}

/// `GET /version`'s `Os/Arch`.
pub fn platform(client: &Client) -> Result<String> {
    let what = "asking the engine for its platform";
    let (_, body) = client.call(what, "GET", "/version", None, Some(CALL_DEADLINE))?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| unexpected(what, e))?;
    match (v["Os"].as_str(), v["Arch"].as_str()) {
        (Some(os), Some(arch)) => Ok(format!("{os}/{arch}")),
        _ => Err(unexpected(what, "no Os and Arch")),
    }
}

/// Create a bridge network; its ID and subnets. On Docker, an internal network's bridge
/// gets no address of the host's (`inhibit_ipv4`): Docker drops what would leave the
/// network, but the host itself answers on the bridge's address, so a service listening
/// on all of the host's addresses would be in reach. Podman's bridge keeps its address
/// (its API has no such option).
pub fn create(
    client: &Client,
    kind: Kind,
    name: &str,
    internal: bool,
    labels: &[(String, String)],
) -> Result<(String, Vec<String>)> {
    let what = format!("creating network {name}");
    let mut body = json!({
        "Name": name,
        "Driver": "bridge",
        "Internal": internal,
        "CheckDuplicate": true,
        "Labels": super::create::labels(labels),
    });
    if internal && kind == Kind::Docker {
        body["Options"] = json!({ "com.docker.network.bridge.inhibit_ipv4": "true" });
    }
    let (_, answer) = client.call(
        &what,
        "POST",
        "/networks/create",
        Some(body.to_string().as_bytes()),
        Some(CALL_DEADLINE),
    )?;
    #[derive(Deserialize)]
    struct Created {
        #[serde(rename = "Id")]
        id: String,
    }
    let created: Created = serde_json::from_slice(&answer).map_err(|e| unexpected(&what, e))?;
    let (_, answer) = client.call(
        &what,
        "GET",
        &format!("/networks/{}", created.id),
        None,
        Some(CALL_DEADLINE),
    )?;
    let inspect: Value = serde_json::from_slice(&answer).map_err(|e| unexpected(&what, e))?;
    // Docker says `IPAM.Config[].Subnet`; Podman's compatible API too, and its own
    // `subnets[].subnet`.
    let subnets = inspect["IPAM"]["Config"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["Subnet"])
        .chain(
            inspect["subnets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| &c["subnet"]),
        )
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    Ok((created.id, subnets))
}

pub fn connect(client: &Client, network: &str, container: &str) -> Result<()> {
    let body = json!({ "Container": container });
    client.call(
        "connecting the proxy to its network",
        "POST",
        &format!("/networks/{network}/connect"),
        Some(body.to_string().as_bytes()),
        Some(CALL_DEADLINE),
    )?;
    Ok(())
}

/// The container's address on the network named `network`.
pub fn address_on(client: &Client, container: &str, network: &str) -> Result<String> {
    let what = "reading the proxy's address";
    let (_, answer) = client.call(
        what,
        "GET",
        &format!("/containers/{container}/json"),
        None,
        Some(CALL_DEADLINE),
    )?;
    let inspect: Value = serde_json::from_slice(&answer).map_err(|e| unexpected(what, e))?;
    inspect["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        .ok_or_else(|| unexpected(what, format!("no address on network {network}")))
}

pub fn remove(client: &Client, id: &str) -> Result<()> {
    match client.call(
        "removing the run's network",
        "DELETE",
        &format!("/networks/{id}"),
        None,
        Some(CALL_DEADLINE),
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The tags of the images carrying `label`.
pub fn images_labelled(client: &Client, label: &str) -> Result<Vec<String>> {
    let what = "listing images";
    let filters = encode(&json!({ "label": [label] }).to_string());
    let (_, answer) = client.call(
        what,
        "GET",
        &format!("/images/json?filters={filters}"),
        None,
        Some(CALL_DEADLINE),
    )?;
    let listed: Vec<Value> = serde_json::from_slice(&answer).map_err(|e| unexpected(what, e))?;
    Ok(listed
        .iter()
        .flat_map(|i| i["RepoTags"].as_array().into_iter().flatten())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect())
}

/// Remove an image, not forced: one a container uses stays.
pub fn remove_image(client: &Client, tag: &str) -> Result<()> {
    match client.call(
        &format!("removing image {tag}"),
        "DELETE",
        &format!("/images/{}", encode(tag)),
        None,
        Some(CALL_DEADLINE),
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Networks carrying `label` (`KEY=VALUE`).
pub fn list(client: &Client, label: &str) -> Result<Vec<ManagedNetwork>> {
    let what = "listing networks";
    let filters = encode(&json!({ "label": [label] }).to_string());
    let (_, answer) = client.call(
        what,
        "GET",
        &format!("/networks?filters={filters}"),
        None,
        Some(CALL_DEADLINE),
    )?;
    #[derive(Deserialize)]
    struct Listed {
        #[serde(rename = "Id")]
        id: String,
        #[serde(rename = "Labels", default)]
        labels: Option<std::collections::HashMap<String, String>>,
    }
    let listed: Vec<Listed> = serde_json::from_slice(&answer).map_err(|e| unexpected(what, e))?;
    Ok(listed
        .into_iter()
        .map(|n| {
            let mut labels = n.labels.unwrap_or_default();
            ManagedNetwork {
                id: n.id,
                run_id: labels.remove("moat.run_id"),
                home: labels.remove("moat.home"),
            }
        })
        .collect())
}
