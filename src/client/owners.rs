//! Which node owns which statement, as the market's `GET /cluster` tells it, so that a
//! client sends a statement's orders to its owner directly instead of paying a hop
//! through whichever node it called (the node would forward them).
//!
//! The view is read once per [`REFRESH`] (lazily, on the first order after that) and is
//! only a hint: a node that does not own the statement (any more) forwards the call, and
//! a node that cannot be reached is left alone for [`DOWN_FOR`] while calls go to the
//! base URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a view of the owners is used.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How long a node that could not be reached gets no calls.
pub const DOWN_FOR: Duration = Duration::from_secs(60);
/// Most statements a view keeps (a market has far fewer; this bounds a hostile answer).
const MAX_STATEMENTS: usize = 100_000;

/// The owners' view of one client (shared by its clones).
#[derive(Debug, Default)]
pub struct Owners {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    read_at: Option<Instant>,
    url_of: HashMap<String, String>,
    down: HashMap<String, Instant>,
}

/// What the view says about a statement.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// Call this base URL (the owner's).
    At(String),
    /// Call the client's own base URL (no owner known, it is the base, or it is down).
    Base,
    /// The view is missing or old: read `/cluster` first.
    Unknown,
}

impl Owners {
    /// Where a call about `stmt` goes, for a client of `base` at `now`.
    pub fn owner(&self, stmt: &str, base: &str, now: Instant) -> Owner {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match st.read_at {
            Some(t) if now.duration_since(t) < REFRESH => {}
            _ => return Owner::Unknown,
        }
        match st.url_of.get(stmt) {
            Some(url) if url != base && st.down.get(url).is_none_or(|t| now >= *t) => {
                Owner::At(url.clone())
            }
            _ => Owner::Base,
        }
    }

    /// Takes a new view from a `/cluster` answer (`None`: it could not be read, so the
    /// base URL is used until the next refresh).
    pub fn update(&self, cluster: Option<&Value>, now: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.read_at = Some(now);
        st.url_of = cluster.map(owner_urls).unwrap_or_default();
        st.down.retain(|_, until| now < *until);
    }

    /// `url` could not be reached: no calls to it for [`DOWN_FOR`].
    pub fn down(&self, url: &str, now: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.down.insert(url.to_owned(), now + DOWN_FOR);
    }
}

/// Statement → its owner's URL, from a `/cluster` answer (`nodes[].{id, url}`,
/// `statements[].{statement, owner}`); statements whose owner has no `http://` URL are
/// left out. Only worth it with more than one node.
pub fn owner_urls(cluster: &Value) -> HashMap<String, String> {
    let nodes = cluster["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if nodes.len() < 2 {
        return HashMap::new();
    }
    let url_of: HashMap<&str, &str> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n["url"].as_str()?)))
        .filter(|(_, url)| url.starts_with("http://"))
        .collect();
    cluster["statements"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            let url = url_of.get(s["owner"].as_str()?)?;
            Some((
                s["statement"].as_str()?.to_owned(),
                url.trim_end_matches('/').to_owned(),
            ))
        })
        .take(MAX_STATEMENTS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view() -> Value {
        json!({
            "node": "a",
            "nodes": [
                {"id": "a", "url": "http://127.0.0.1:1", "statements": ["1"]},
                {"id": "b", "url": "http://127.0.0.1:2/", "statements": ["2"]},
                {"id": "c", "url": "https://elsewhere", "statements": ["3"]},
            ],
            "statements": [
                {"statement": "1", "owner": "a"},
                {"statement": "2", "owner": "b"},
                {"statement": "3", "owner": "c"},
                {"statement": "4", "owner": "gone"},
            ],
        })
    }

    #[test]
    fn statements_go_to_their_owners_and_the_rest_to_the_base() {
        let o = Owners::default();
        let t = Instant::now();
        let base = "http://127.0.0.1:1";
        assert_eq!(o.owner("2", base, t), Owner::Unknown);
        o.update(Some(&view()), t);
        assert_eq!(
            o.owner("2", base, t),
            Owner::At("http://127.0.0.1:2".into())
        );
        // The base itself, an owner without a plain http URL, an unknown owner, an
        // unknown statement: the base.
        for s in ["1", "3", "4", "5"] {
            assert_eq!(o.owner(s, base, t), Owner::Base, "statement {s}");
        }
        // A node that could not be reached is skipped for a while.
        o.down("http://127.0.0.1:2", t);
        assert_eq!(o.owner("2", base, t), Owner::Base);
        assert_eq!(o.owner("2", base, t + Duration::from_secs(1)), Owner::Base);
        // An old view is read again.
        assert_eq!(o.owner("2", base, t + REFRESH), Owner::Unknown);
        o.update(Some(&view()), t + DOWN_FOR);
        assert_eq!(
            o.owner("2", base, t + DOWN_FOR),
            Owner::At("http://127.0.0.1:2".into())
        );
    }

    #[test]
    fn one_node_or_an_unreadable_view_means_the_base() {
        let o = Owners::default();
        let t = Instant::now();
        let one = json!({"nodes": [{"id": "b", "url": "http://127.0.0.1:2"}],
                         "statements": [{"statement": "2", "owner": "b"}]});
        o.update(Some(&one), t);
        assert_eq!(o.owner("2", "http://127.0.0.1:1", t), Owner::Base);
        o.update(None, t);
        assert_eq!(o.owner("2", "http://127.0.0.1:1", t), Owner::Base);
        assert!(owner_urls(&json!("not a view")).is_empty());
    }
}
