//! Statement leases and fencing tokens against a real Redis (the store's scripts alone).

mod common;

use std::time::Duration;

use common::Backend;
use proof_market::domain::Key;
use proof_market::store::{Lease, RedisTarget, Store};

#[tokio::test]
async fn leases_fence_earlier_holders_and_survive_a_lapse_nobody_used() {
    let b = Backend::new();
    let target = RedisTarget::parse(&b.url, false).unwrap();
    let store = Store::open(&target, &b.prefix).await.unwrap();
    let s = Key(7);

    let Lease::Acquired(t1) = store.acquire_lease(s, "a", 300).await.unwrap() else {
        panic!("a free lease was not granted");
    };
    assert_eq!(
        store.acquire_lease(s, "b", 300).await.unwrap(),
        Lease::HeldBy("a".into())
    );
    // Lapsed, and nobody took it: the holder's fence still stands, so it renews.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.renew_lease(s, "a", t1, 300).await.unwrap());
    assert_eq!(
        store.acquire_lease(s, "b", 300).await.unwrap(),
        Lease::HeldBy("a".into())
    );
    // Lapsed and taken: the new holder has a new token; the old one can renew nothing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let Lease::Acquired(t2) = store.acquire_lease(s, "b", 300).await.unwrap() else {
        panic!("a lapsed lease was not granted");
    };
    assert!(t2 > t1);
    assert!(!store.renew_lease(s, "a", t1, 300).await.unwrap());
    assert!(!store.release_lease(s, "a", t1).await.unwrap());
    // Released: the next node gets it at once, with yet another token.
    assert!(store.release_lease(s, "b", t2).await.unwrap());
    let Lease::Acquired(t3) = store.acquire_lease(s, "a", 300).await.unwrap() else {
        panic!("a released lease was not granted");
    };
    assert!(t3 > t2);
    let (holder, token, _) = store.lease_info(s).await.unwrap();
    assert_eq!((holder.as_deref(), token), (Some("a"), t3));
}
