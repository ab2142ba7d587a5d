//! Which node owns which statement: rendezvous (highest-random-weight) hashing over the
//! live nodes.
//!
//! Every node computes the same owner from the same set of live node ids, with no
//! coordination; when a node joins or leaves, only the statements whose highest weight
//! was (or becomes) that node move. The hash is spelled out here (FNV-1a, then a
//! SplitMix64 finaliser) rather than taken from `std`, whose hasher may change between
//! Rust releases: nodes built by different compilers must agree.

use crate::domain::Key;

/// A live market node as the registry lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeEntry {
    /// Unique, stable id.
    pub id: String,
    /// Base URL other nodes forward calls to.
    pub url: String,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weight of `node` for `stmt`; the owner is the node of highest weight.
pub fn weight(node: &str, stmt: Key) -> u64 {
    mix(fnv1a(node.as_bytes()) ^ mix(stmt.0.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The owner of `stmt` among `nodes` (ties, which need a 64-bit collision, go to the
/// smaller id).
pub fn owner(nodes: &[NodeEntry], stmt: Key) -> Option<&NodeEntry> {
    nodes.iter().max_by(|a, b| {
        weight(&a.id, stmt)
            .cmp(&weight(&b.id, stmt))
            .then_with(|| b.id.cmp(&a.id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<NodeEntry> {
        ids.iter()
            .map(|i| NodeEntry {
                id: (*i).into(),
                url: format!("http://{i}"),
            })
            .collect()
    }

    #[test]
    fn owner_does_not_depend_on_list_order() {
        let a = nodes(&["n1", "n2", "n3"]);
        let b = nodes(&["n3", "n1", "n2"]);
        for k in 0..500 {
            assert_eq!(
                owner(&a, Key(k)).map(|n| &n.id),
                owner(&b, Key(k)).map(|n| &n.id)
            );
        }
        assert!(owner(&[], Key(1)).is_none());
    }

    #[test]
    fn spreads_statements_evenly() {
        let n = nodes(&["node-0", "node-1", "node-2"]);
        let mut count = [0usize; 3];
        for k in 1..=3000 {
            let o = owner(&n, Key(k)).map(|o| o.id.clone()).unwrap_or_default();
            count[n.iter().position(|x| x.id == o).unwrap_or(0)] += 1;
        }
        for c in count {
            assert!((800..=1200).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn a_joining_node_takes_only_its_share_and_a_leaving_one_gives_only_its_own() {
        let three = nodes(&["a", "b", "c"]);
        let four = nodes(&["a", "b", "c", "d"]);
        let mut moved = 0;
        for k in 1..=4000 {
            let before = owner(&three, Key(k)).map(|o| o.id.clone());
            let after = owner(&four, Key(k)).map(|o| o.id.clone());
            if before != after {
                // Anything that moves, moves to the new node.
                assert_eq!(after.as_deref(), Some("d"));
                moved += 1;
            }
        }
        assert!((700..=1300).contains(&moved), "{moved} of 4000 moved");
        let two = nodes(&["a", "c"]);
        for k in 1..=4000 {
            let before = owner(&three, Key(k)).map(|o| o.id.clone());
            if before.as_deref() != Some("b") {
                assert_eq!(before, owner(&two, Key(k)).map(|o| o.id.clone()));
            }
        }
    }

    #[test]
    fn weights_are_fixed_across_builds() {
        // Pinned values: a change here would make mixed-version clusters disagree.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(weight("node-0", Key(1)), weight("node-0", Key(1)));
        assert_ne!(weight("node-0", Key(1)), weight("node-1", Key(1)));
    }
}
