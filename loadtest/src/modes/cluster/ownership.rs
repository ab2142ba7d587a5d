//! Ownership in a multi-node run: the fields of `/cluster` and `/health` the harness
//! reads, when ownership counts as settled (every statement's lease with its owner and
//! every node agreeing), how statements spread over the nodes, and the forwarded share
//! that spread predicts. Pure checks, then the reads and the wait that use them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::driver;
use crate::env::MarketEnv;
use crate::market::{Population, ROOT};

/// `GET /_db/market/v0_0/cluster`, the fields read here.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ClusterView {
    /// Live nodes.
    pub nodes: Vec<ViewNode>,
    /// Every statement with its owner and lease holder.
    pub statements: Vec<ViewStatement>,
}

/// A live node of `/cluster`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ViewNode {
    /// Its id.
    pub id: String,
    /// Its advertised URL.
    #[serde(default)]
    pub url: String,
    /// Statements whose lease it holds.
    #[serde(default)]
    pub statements: Vec<String>,
}

/// A statement of `/cluster`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ViewStatement {
    /// Its key.
    pub statement: String,
    /// The node that should own it (rendezvous over the live nodes).
    pub owner: Option<String>,
    /// The node holding its lease.
    pub lease_holder: Option<String>,
}

/// `GET /health`, the fields read here.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Health {
    /// The node's id.
    pub node: String,
    /// Live nodes in its view.
    pub live_nodes: usize,
    /// Statements whose matcher runs there.
    #[serde(default)]
    pub statements_owned: Vec<String>,
    /// Writes the store refused because another node had taken over.
    #[serde(default)]
    pub fenced_writes: u64,
}

/// Statement → index (in `ids`) of the node that owns it, once ownership has settled:
/// the live nodes are exactly `ids`, and every one of `statements` has an owner among
/// them that also holds its lease. Otherwise why not (for the timeout message).
pub fn settled_owners(
    view: &ClusterView,
    ids: &[String],
    statements: &[u64],
) -> std::result::Result<HashMap<u64, usize>, String> {
    let live: HashSet<&str> = view.nodes.iter().map(|n| n.id.as_str()).collect();
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    if live != want {
        let mut l: Vec<&str> = live.into_iter().collect();
        l.sort();
        return Err(format!("live nodes {l:?}, expected {ids:?}"));
    }
    let by_key: HashMap<&str, &ViewStatement> = view
        .statements
        .iter()
        .map(|s| (s.statement.as_str(), s))
        .collect();
    let mut owners = HashMap::new();
    for stmt in statements {
        let Some(s) = by_key.get(stmt.to_string().as_str()) else {
            return Err(format!("statement {stmt} not listed"));
        };
        let Some(owner) = s.owner.as_deref() else {
            return Err(format!("statement {stmt} has no owner"));
        };
        if s.lease_holder.as_deref() != Some(owner) {
            return Err(format!(
                "statement {stmt}: owner {owner}, lease held by {:?}",
                s.lease_holder
            ));
        }
        let Some(i) = ids.iter().position(|id| id == owner) else {
            return Err(format!("statement {stmt}: unknown owner {owner}"));
        };
        owners.insert(*stmt, i);
    }
    Ok(owners)
}

/// Checks that every node (in `ids` order) is answering as itself, sees all the nodes,
/// and runs the matchers of the statements `owners` gives it.
pub fn health_agrees(
    health: &[Health],
    ids: &[String],
    owners: &HashMap<u64, usize>,
) -> std::result::Result<(), String> {
    if health.len() != ids.len() {
        return Err(format!("{} of {} nodes healthy", health.len(), ids.len()));
    }
    for (i, (h, id)) in health.iter().zip(ids).enumerate() {
        if &h.node != id {
            return Err(format!("node {i} answers as {:?}, expected {id:?}", h.node));
        }
        if h.live_nodes != ids.len() {
            return Err(format!("{id} sees {} live nodes", h.live_nodes));
        }
        let running: HashSet<&str> = h.statements_owned.iter().map(String::as_str).collect();
        for (stmt, _) in owners.iter().filter(|(_, &o)| o == i) {
            if !running.contains(stmt.to_string().as_str()) {
                return Err(format!("{id} does not run statement {stmt} yet"));
            }
        }
    }
    Ok(())
}

/// How many of `statements` each of `nodes` nodes owns.
pub fn owned_counts(owners: &HashMap<u64, usize>, nodes: usize) -> Vec<usize> {
    let mut v = vec![0; nodes];
    for &o in owners.values() {
        if o < nodes {
            v[o] += 1;
        }
    }
    v
}

/// Share of orders the harness should see forwarded when users are spread evenly over
/// the nodes and statements are picked uniformly: for each statement, the share of
/// users not on its owner.
pub fn expected_forwarded_share(owners: &HashMap<u64, usize>, users_per_node: &[usize]) -> f64 {
    let users: usize = users_per_node.iter().sum();
    if owners.is_empty() || users == 0 {
        return 0.0;
    }
    let away: f64 = owners
        .values()
        .map(|&o| 1.0 - users_per_node.get(o).copied().unwrap_or(0) as f64 / users as f64)
        .sum();
    away / owners.len() as f64
}

/// Reads the nodes' `/health` (all must answer 200) and `/cluster` (through node 0).
pub async fn read_cluster(
    env: &MarketEnv,
    pop: &Population,
) -> std::result::Result<(Vec<Health>, ClusterView), String> {
    let user = pop.requesters.first().ok_or("no user")?;
    let mut health = Vec::new();
    for t in &env.nodes {
        let url = format!("{}/health", t.base());
        let r = user
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("{url}: {}", r.status()));
        }
        health.push(r.json::<Health>().await.map_err(|e| e.to_string())?);
    }
    let url = format!("{}{ROOT}/cluster", env.nodes[0].base());
    let r = user
        .http
        .get(&url)
        .header("authorization", user.auth.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("{url}: {}", r.status()));
    }
    let view = r.json::<ClusterView>().await.map_err(|e| e.to_string())?;
    Ok((health, view))
}

/// Waits until ownership has settled; returns statement → node index.
pub async fn wait_settled(
    env: &MarketEnv,
    pop: &Population,
    limit: Duration,
) -> Result<HashMap<u64, usize>> {
    let deadline = Instant::now() + limit;
    loop {
        let why = match read_cluster(env, pop).await {
            Ok((health, view)) => {
                match settled_owners(&view, &env.node_ids, &pop.statements)
                    .and_then(|o| health_agrees(&health, &env.node_ids, &o).map(|()| o))
                {
                    Ok(o) => return Ok(o),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline || driver::stopped() {
            bail!("ownership did not settle within {limit:?}: {why}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(nodes: &[&str], stmts: &[(&str, Option<&str>, Option<&str>)]) -> ClusterView {
        ClusterView {
            nodes: nodes
                .iter()
                .map(|id| ViewNode {
                    id: (*id).into(),
                    url: String::new(),
                    statements: Vec::new(),
                })
                .collect(),
            statements: stmts
                .iter()
                .map(|(s, o, l)| ViewStatement {
                    statement: (*s).into(),
                    owner: o.map(Into::into),
                    lease_holder: l.map(Into::into),
                })
                .collect(),
        }
    }

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn settles_only_when_every_lease_sits_with_its_owner() {
        let ok = view(
            &["c", "a", "b"],
            &[
                ("10", Some("a"), Some("a")),
                ("11", Some("c"), Some("c")),
                ("99", Some("b"), None), // not ours: ignored
            ],
        );
        let o = settled_owners(&ok, &ids(), &[10, 11]).unwrap();
        assert_eq!(o, HashMap::from([(10, 0), (11, 2)]));
        let moving = view(
            &["a", "b", "c"],
            &[("10", Some("a"), Some("b")), ("11", Some("c"), Some("c"))],
        );
        assert!(settled_owners(&moving, &ids(), &[10, 11])
            .unwrap_err()
            .contains("lease held by"));
        let unheld = view(&["a", "b", "c"], &[("10", Some("a"), None)]);
        assert!(settled_owners(&unheld, &ids(), &[10]).is_err());
        let missing_node = view(&["a", "b"], &[("10", Some("a"), Some("a"))]);
        assert!(settled_owners(&missing_node, &ids(), &[10])
            .unwrap_err()
            .contains("live nodes"));
        assert!(settled_owners(&ok, &ids(), &[12])
            .unwrap_err()
            .contains("not listed"));
        let stranger = view(&["a", "b", "c"], &[("10", Some("z"), Some("z"))]);
        assert!(settled_owners(&stranger, &ids(), &[10]).is_err());
    }

    #[test]
    fn parses_the_nodes_answers() {
        let v: ClusterView = serde_json::from_str(
            r#"{"node":"a","nodes":[{"id":"a","url":"http://127.0.0.1:1","statements":["10"]}],
                "statements":[{"statement":"10","owner":"a","lease_holder":"a","fencing_token":3,"fenced_writes":0}]}"#,
        )
        .unwrap();
        assert_eq!(
            settled_owners(&v, &["a".into()], &[10]).unwrap(),
            HashMap::from([(10, 0)])
        );
        let h: Health = serde_json::from_str(
            r#"{"status":"ok","ready":true,"node":"a","url":"u","redis":"reachable","statements":1,
                "statements_owned":["10"],"live_nodes":1,"fenced_writes":0}"#,
        )
        .unwrap();
        assert_eq!(h.statements_owned, vec!["10".to_string()]);
    }

    #[test]
    fn health_must_agree_with_ownership() {
        let h = |node: &str, live: usize, owned: &[&str]| Health {
            node: node.into(),
            live_nodes: live,
            statements_owned: owned.iter().map(|s| (*s).into()).collect(),
            fenced_writes: 0,
        };
        let owners = HashMap::from([(10, 0), (11, 2)]);
        let good = [h("a", 3, &["10"]), h("b", 3, &[]), h("c", 3, &["11"])];
        assert_eq!(health_agrees(&good, &ids(), &owners), Ok(()));
        let stale_view = [h("a", 2, &["10"]), h("b", 3, &[]), h("c", 3, &["11"])];
        assert!(health_agrees(&stale_view, &ids(), &owners).is_err());
        let not_running = [h("a", 3, &["10"]), h("b", 3, &[]), h("c", 3, &[])];
        assert!(health_agrees(&not_running, &ids(), &owners)
            .unwrap_err()
            .contains("statement 11"));
        let swapped = [h("b", 3, &[]), h("a", 3, &["10"]), h("c", 3, &["11"])];
        assert!(health_agrees(&swapped, &ids(), &owners).is_err());
        assert!(health_agrees(&good[..2], &ids(), &owners).is_err());
    }

    #[test]
    fn ownership_counts_and_expected_forwarding() {
        let owners = HashMap::from([(1, 0), (2, 0), (3, 1), (4, 2)]);
        assert_eq!(owned_counts(&owners, 3), vec![2, 1, 1]);
        // Users evenly over 3 nodes: 2/3 of the orders land on a node not owning.
        let e = expected_forwarded_share(&owners, &[4, 4, 4]);
        assert!((e - 2.0 / 3.0).abs() < 1e-9, "{e}");
        // One node: nothing is forwarded.
        let one = HashMap::from([(1, 0), (2, 0)]);
        assert_eq!(expected_forwarded_share(&one, &[8]), 0.0);
        // Uneven users: statement on node 0 (6 of 8 users) and node 1 (2 of 8).
        let e = expected_forwarded_share(&HashMap::from([(1, 0), (2, 1)]), &[6, 2]);
        assert!((e - (0.25 + 0.75) / 2.0).abs() < 1e-9, "{e}");
        assert_eq!(expected_forwarded_share(&HashMap::new(), &[1]), 0.0);
    }
}
