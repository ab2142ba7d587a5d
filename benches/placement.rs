//! One placement through a statement's pure state (criterion): the book, the sender's
//! quota and account, the idempotency key, the match and its money, the ops to write —
//! everything a matcher does per order but the I/O. With a `BTreeMap<u64, u64>` insert at
//! 20,000 entries measured in the same run, so the figures read as a ratio of a
//! plain ordered map on this machine.
//!
//! The state holds about 10,000 resting orders per side; requests and proposals arrive
//! alternately from 2,000 users per side at prices drawn so that about half of them match
//! (the load test's mix). Orders are built outside the timed region, in blocks of 1,000;
//! after 40,000 placements (matched orders stay open, awaiting their proofs) the state is
//! replaced by a fresh one between blocks.
//!
//! Run: `cargo bench --bench placement` (add `-- --quick` for a shorter run).

mod common;

use common::{median, note, Rng, SAMPLES};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use proof_market::domain::{Cost, IdempotencyKey, Key, Millis, ScopedKey, Side, Status};
use proof_market::market::money::Economics;
use proof_market::market::state::{Placed, Quotas, Rules, Snapshot, StatementState};
use proof_market::store::OrderRecord;
use std::sync::atomic::{AtomicU64, Ordering};

const STMT: Key = Key(1);
const USERS: u64 = 2_000;
const RESTING: u64 = 10_000;
const BLOCK: u64 = 1_000;
const REFILL_AT: usize = 40_000;

/// Placements in timed blocks that did not place a new order (refused or short): the
/// bench must measure placements, so this is printed and expected to be 0.
static NOT_PLACED: AtomicU64 = AtomicU64::new(0);
/// Timed placements that matched at once.
static MATCHED: AtomicU64 = AtomicU64::new(0);
static TIMED: AtomicU64 = AtomicU64::new(0);

fn rules() -> Rules {
    Rules {
        retention: Duration::from_secs(3600),
        quotas: Quotas::default(),
        economics: Economics {
            sweep_after: Duration::from_secs(3600),
            ..Economics::default()
        },
    }
}

/// A fresh state and the generator of its orders.
struct Fixture {
    state: StatementState,
    rng: Rng,
    next_key: u64,
    now: u64,
    /// Orders placed in timed blocks (matched ones stay open, awaiting proofs).
    placed: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let mut f = Fixture {
            state: StatementState::rebuild(STMT, Snapshot::default(), rules()),
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            next_key: 1,
            now: 1_800_000_000_000,
            placed: 0,
        };
        // Resting orders that do not cross: bids at 1.00–3.00, asks at 7.00–9.00. Every
        // user's first order brings its account's money.
        for i in 0..2 * RESTING {
            let side = if i % 2 == 0 {
                Side::Request
            } else {
                Side::Proposal
            };
            let cents = match side {
                Side::Request => f.rng.range(100, 300),
                Side::Proposal => f.rng.range(700, 900),
            };
            let o = f.order(side, cents);
            let topup = if i < 2 * USERS { 1 << 60 } else { 0 };
            let _ = f.state.place(o, None, topup);
        }
        f
    }

    fn order(&mut self, side: Side, cents: u64) -> OrderRecord {
        let key = self.next_key;
        self.next_key += 1;
        self.now += 1;
        let user = key / 2 % USERS;
        let (sender, input, canon) = match side {
            Side::Request => (
                format!("requester{user}"),
                Some(format!("[{{\"field\":{key}}},{{\"field\":2}}]")),
                Some(format!("{key},2")),
            ),
            Side::Proposal => (format!("producer{user}"), None, None),
        };
        OrderRecord {
            key: Key(key),
            side,
            statement: STMT,
            cost: Cost::from_micros(cents * 10_000).expect("valid cost"),
            eval_time: None,
            wait_period: None,
            sender,
            created: Millis(self.now),
            updated: Millis(self.now),
            status: Status::Created,
            seq: 0,
            input,
            canon,
            counterpart: None,
            matched_time: None,
            price: None,
            proof_key: None,
            held: 0,
            funded_at: None,
            failed: None,
        }
    }

    /// A block of arriving orders: alternately a request and a proposal, at 2.00–8.00, so
    /// that about half cross the other side; with an idempotency key when `keyed`.
    fn block(&mut self, keyed: bool) -> Vec<(OrderRecord, Option<ScopedKey>)> {
        (0..BLOCK)
            .map(|i| {
                let side = if i % 2 == 0 {
                    Side::Request
                } else {
                    Side::Proposal
                };
                let cents = self.rng.range(200, 800);
                let o = self.order(side, cents);
                let k = keyed.then(|| {
                    IdempotencyKey::parse(&format!("k{}", o.key)).map(|k| k.scoped(side, &o.sender))
                });
                (o, k.and_then(Result::ok))
            })
            .collect()
    }
}

fn bench_place(c: &mut Criterion, name: &'static str, keyed: bool) {
    let mut f = Fixture::new();
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                if f.placed >= REFILL_AT {
                    f = Fixture::new();
                }
                let n = BLOCK.min(iters - done);
                let orders = f.block(keyed);
                f.placed += n as usize;
                let mut answers = Vec::with_capacity(n as usize);
                let t = Instant::now();
                for (o, k) in orders.into_iter().take(n as usize) {
                    answers.push(black_box(f.state.place(o, k, 0)));
                }
                let e = t.elapsed();
                note(name, e, n);
                for a in answers {
                    match a.map(|d| d.answer) {
                        Ok(Placed::New(o)) => {
                            if o.status == Status::Processing {
                                MATCHED.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            NOT_PLACED.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                TIMED.fetch_add(n, Ordering::Relaxed);
                total += e;
                done += n;
            }
            total
        })
    });
}

fn bench_btreemap(c: &mut Criterion) {
    let mut m: BTreeMap<u64, u64> = BTreeMap::new();
    let mut rng = Rng(7);
    for _ in 0..2 * RESTING {
        m.insert(rng.next(), 0);
    }
    c.bench_function("btreemap_insert_20k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = BLOCK.min(iters - done);
                let keys: Vec<u64> = (0..n).map(|_| rng.next()).collect();
                let t = Instant::now();
                for k in &keys {
                    m.insert(*k, 1);
                }
                let e = t.elapsed();
                for k in &keys {
                    m.remove(k);
                }
                note("btreemap_insert_20k", e, n);
                total += e;
                done += n;
            }
            total
        })
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_btreemap(&mut c);
    bench_place(&mut c, "place", false);
    bench_place(&mut c, "place_with_idempotency_key", true);
    c.final_summary();

    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let base = samples
        .get_mut("btreemap_insert_20k")
        .map(|v| median(v))
        .unwrap_or(f64::NAN);
    println!(
        "\ntimed placements {}: {} matched at once, {} not placed",
        TIMED.load(Ordering::Relaxed),
        MATCHED.load(Ordering::Relaxed),
        NOT_PLACED.load(Ordering::Relaxed)
    );
    println!("{:<32} {:>10} {:>10}", "benchmark", "ns/op", "× btree");
    for (name, v) in samples.iter_mut() {
        let m = median(v);
        println!("{name:<32} {m:>10.1} {:>10.1}", m / base);
    }
}
