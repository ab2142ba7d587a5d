//! Statement leases and fencing tokens against a real Redis (the store's scripts alone).

mod common;

use std::time::Duration;

use common::{redis_query, Backend};
use proof_market::domain::Key;
use proof_market::store::keys::Keys;
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

/// The pipelined lease calls of a renewal round or a takeover give each statement what
/// the single calls give, over more statements than one pipeline holds: a lease held
/// elsewhere stays there, a stale token renews nothing, and a call that fails (here a
/// lease key of the wrong type) fails alone.
async fn batched_lease_calls(b: &Backend) {
    let target = RedisTarget::parse(&b.url, b.url.contains(',')).unwrap();
    let store = Store::open(&target, &b.prefix).await.unwrap();
    let keys = Keys::new(&b.prefix);
    let n = 2500;
    let stmts: Vec<Key> = (1..=n).map(Key).collect();
    let elsewhere = |s: Key| s.0 % 500 == 10;
    let broken = Key(77);
    for s in stmts.iter().copied().filter(|&s| elsewhere(s)) {
        assert_eq!(
            store.acquire_lease(s, "b", 60_000).await.unwrap(),
            Lease::Acquired(1)
        );
    }
    let broken_lease = keys.statement(broken).lease();
    redis_query::<()>(
        &b.url,
        redis::cmd("HSET").arg(&broken_lease).arg("f").arg("v"),
    );
    // No script cached: each pipeline loads its own.
    redis_query::<()>(&b.url, redis::cmd("SCRIPT").arg("FLUSH"));

    let taken = store.acquire_leases(&stmts, "a", 60_000).await;
    assert_eq!(taken.len(), stmts.len());
    let mut tokens = Vec::new();
    for (&s, r) in stmts.iter().zip(taken) {
        match r {
            Err(_) if s == broken => {}
            Ok(Lease::HeldBy(h)) if elsewhere(s) => assert_eq!(h, "b"),
            Ok(Lease::Acquired(t)) if s != broken && !elsewhere(s) => tokens.push((s, t)),
            other => panic!("statement {s}: {other:?}"),
        }
    }
    for &(s, t) in tokens.iter().step_by(97) {
        let (holder, token, _) = store.lease_info(s).await.unwrap();
        assert_eq!((holder.as_deref(), token), (Some("a"), t), "statement {s}");
    }

    let mut round = tokens.clone();
    let stale = round[5].0;
    round[5].1 -= 1;
    round.push((broken, 1));
    round.push((Key(10), 1)); // "b"'s lease, with "b"'s token
    let renewed = store.renew_leases(&round, "a", 90_000).await;
    assert_eq!(renewed.len(), round.len());
    for (&(s, _), r) in round.iter().zip(renewed) {
        match r {
            Err(_) if s == broken => {}
            Ok(false) if s == stale || s == Key(10) => {}
            Ok(true) if s != stale && s != broken && s != Key(10) => {}
            other => panic!("statement {s}: {other:?}"),
        }
    }
    let ttl = |s: Key| -> i64 {
        redis_query(
            &b.url,
            redis::cmd("PTTL").arg(Keys::new(&b.prefix).statement(s).lease()),
        )
    };
    assert!(ttl(tokens[0].0) > 60_000, "a renewed lease got the new TTL");
    assert!(ttl(stale) <= 60_000, "a stale token renewed nothing");
    assert!(ttl(Key(10)) <= 60_000);
    assert_eq!(
        store.lease_info(Key(10)).await.unwrap().0.as_deref(),
        Some("b")
    );
    // The single call agrees with the batch on the same lease.
    assert!(store
        .renew_lease(tokens[1].0, "a", tokens[1].1, 90_000)
        .await
        .unwrap());
    assert!(!store
        .renew_lease(stale, "a", round[5].1, 90_000)
        .await
        .unwrap());
}

#[tokio::test]
async fn batched_lease_calls_on_one_redis() {
    batched_lease_calls(&Backend::new()).await;
}

#[tokio::test]
async fn batched_lease_calls_on_a_redis_cluster() {
    let (b, _cluster) = Backend::cluster();
    batched_lease_calls(&b).await;
}
