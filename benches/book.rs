//! Order book micro-benchmarks (criterion): insert, cancel and match at 100,000 resting
//! orders per side, with a `std::collections::BTreeMap<u64, u64>` insert/remove at the
//! same total size (200,000 entries) measured in the same run, so the book's figures can
//! be read as a ratio of a plain ordered map on this machine.
//!
//! Every operation is timed in blocks of up to 1,000; the work that keeps the book at its
//! size (cancelling what was inserted, re-resting what was cancelled or matched) runs
//! between blocks, outside the timed region. After criterion's own report, a table of
//! median ns/op, the ratio to the BTreeMap insert, and the 200 ns/op target is printed.
//!
//! Run: `cargo bench --bench book` (add `-- --quick` for a shorter run).

mod common;

use common::{median, note, Rng, SAMPLES};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use proof_market::domain::{Cost, Key, Minutes, Side};
use proof_market::market::book::{Book, BookOrder, Placement};

/// Resting orders per side.
const PER_SIDE: u64 = 100_000;
/// Operations per timed block.
const BLOCK: u64 = 1_000;
/// Target per operation.
const TARGET_NS: f64 = 200.0;

/// Bids rest at 1.00–5.00, asks at 5.01–9.00 (in 0.01 steps): 400 levels each, nothing
/// crosses.
const BID_LO: u64 = 100;
const BID_HI: u64 = 500;
const ASK_LO: u64 = 501;
const ASK_HI: u64 = 900;

/// A book with `PER_SIDE` resting orders per side and the state to make more orders.
struct Fixture {
    book: Book,
    rng: Rng,
    next_key: u64,
    /// Keys known to rest (for cancel), kept approximately: matched keys are skipped.
    resting: Vec<(Key, Side)>,
}

fn cents(c: u64) -> Cost {
    Cost::from_micros(c * 10_000).expect("valid cost")
}

impl Fixture {
    fn new() -> Fixture {
        let mut f = Fixture {
            book: Book::new(),
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            next_key: 1,
            resting: Vec::with_capacity(2 * PER_SIDE as usize),
        };
        for _ in 0..PER_SIDE {
            let b = f.order(Side::Request);
            f.rest(b);
            let a = f.order(Side::Proposal);
            f.rest(a);
        }
        f
    }

    /// A fresh non-crossing order of `side`.
    fn order(&mut self, side: Side) -> BookOrder {
        let key = self.next_key;
        self.next_key += 1;
        let (cost, eval_time) = match side {
            Side::Request => {
                let t = [None, None, Some(30), Some(60), Some(120)][(self.rng.next() % 5) as usize];
                (self.rng.range(BID_LO, BID_HI), t)
            }
            Side::Proposal => {
                let t =
                    [None, Some(10), Some(30), Some(60), Some(90)][(self.rng.next() % 5) as usize];
                (self.rng.range(ASK_LO, ASK_HI), t)
            }
        };
        BookOrder {
            key: Key(key),
            side,
            cost: cents(cost),
            eval_time: eval_time.map(Minutes),
            seq: key,
            rank: 0,
        }
    }

    fn rest(&mut self, o: BookOrder) {
        self.book.rest(o).expect("fresh key");
        self.resting.push((o.key, o.side));
    }

    /// An incoming order that crosses the best resting order of the other side.
    fn crossing(&mut self, side: Side) -> BookOrder {
        let key = self.next_key;
        self.next_key += 1;
        let (cost, eval_time) = match side {
            // Pays more than any ask, accepts any generation time.
            Side::Request => (ASK_HI, None),
            // Asks less than any bid and is fast enough for every bid's limit.
            Side::Proposal => (BID_LO, Some(Minutes(1))),
        };
        BookOrder {
            key: Key(key),
            side,
            cost: cents(cost),
            eval_time,
            seq: key,
            rank: 0,
        }
    }
}

/// Times `iters` operations in blocks: `prep` (untimed) builds a block's inputs, `op`
/// (timed) runs on each, `restore` (untimed) puts the book back to its size.
fn blocks<T>(
    f: &mut Fixture,
    iters: u64,
    name: &'static str,
    mut prep: impl FnMut(&mut Fixture, u64) -> Vec<T>,
    mut op: impl FnMut(&mut Book, &T),
    mut restore: impl FnMut(&mut Fixture, Vec<T>),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = BLOCK.min(iters - done);
        let inputs = prep(f, n);
        let t = Instant::now();
        for x in &inputs {
            op(&mut f.book, x);
        }
        let e = t.elapsed();
        total += e;
        note(name, e, inputs.len() as u64);
        restore(f, inputs);
        done += n;
    }
    total
}

fn book_benches(c: &mut Criterion) {
    let mut f = Fixture::new();
    assert_eq!(f.book.len() as u64, 2 * PER_SIDE);
    let mut g = c.benchmark_group("book_100k_per_side");

    g.bench_function("insert_place_noncrossing", |b| {
        b.iter_custom(|iters| {
            blocks(
                &mut f,
                iters,
                "insert (place, no cross)",
                |f, n| {
                    (0..n)
                        .map(|i| {
                            f.order(if i % 2 == 0 {
                                Side::Request
                            } else {
                                Side::Proposal
                            })
                        })
                        .collect()
                },
                |book, o| {
                    let p = book.place(*o).expect("fresh key");
                    debug_assert_eq!(p, Placement::Rested);
                    black_box(p);
                },
                |f, inputs| {
                    for o in inputs {
                        f.book.cancel(o.key);
                    }
                },
            )
        })
    });

    g.bench_function("insert_rest", |b| {
        b.iter_custom(|iters| {
            blocks(
                &mut f,
                iters,
                "insert (rest)",
                |f, n| {
                    (0..n)
                        .map(|i| {
                            f.order(if i % 2 == 0 {
                                Side::Request
                            } else {
                                Side::Proposal
                            })
                        })
                        .collect()
                },
                |book, o| {
                    book.rest(black_box(*o)).expect("fresh key");
                },
                |f, inputs| {
                    for o in inputs {
                        f.book.cancel(o.key);
                    }
                },
            )
        })
    });

    g.bench_function("cancel", |b| {
        b.iter_custom(|iters| {
            blocks(
                &mut f,
                iters,
                "cancel",
                |f, n| {
                    // Random resting orders (swap-removed from the list, re-rested after).
                    (0..n)
                        .filter_map(|_| {
                            let i = (f.rng.next() % f.resting.len() as u64) as usize;
                            let (k, side) = f.resting.swap_remove(i);
                            f.book.contains(k).then_some((k, side))
                        })
                        .collect()
                },
                |book, &(k, _)| {
                    black_box(book.cancel(k));
                },
                |f, inputs| {
                    for (_, side) in inputs {
                        let o = f.order(side);
                        f.rest(o);
                    }
                },
            )
        })
    });

    for (name, label, side) in [
        (
            "match_request_takes_best_ask",
            "match (request takes best ask)",
            Side::Request,
        ),
        (
            "match_proposal_takes_best_bid",
            "match (proposal takes best bid)",
            Side::Proposal,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                blocks(
                    &mut f,
                    iters,
                    label,
                    |f, n| (0..n).map(|_| f.crossing(side)).collect(),
                    |book, o| {
                        let p = book.place(*o).expect("fresh key");
                        debug_assert!(matches!(p, Placement::Matched(_)));
                        black_box(p);
                    },
                    |f, inputs| {
                        // Replace each matched resting order by a fresh one of its side.
                        let other = match side {
                            Side::Request => Side::Proposal,
                            Side::Proposal => Side::Request,
                        };
                        for _ in inputs {
                            let o = f.order(other);
                            f.rest(o);
                        }
                    },
                )
            })
        });
    }
    g.finish();
    // The matched orders' keys linger in `resting`; drop them before the sanity check.
    let book = &f.book;
    f.resting.retain(|(k, _)| book.contains(*k));
    assert_eq!(f.book.len() as u64, 2 * PER_SIDE, "the book kept its size");
}

fn baseline_benches(c: &mut Criterion) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut map: BTreeMap<u64, u64> = BTreeMap::new();
    while map.len() < 2 * PER_SIDE as usize {
        map.insert(rng.next(), 1);
    }
    let mut g = c.benchmark_group("baseline_btreemap_200k");
    g.bench_function("insert", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = BLOCK.min(iters - done);
                let keys: Vec<u64> = (0..n).map(|_| rng.next()).collect();
                let t = Instant::now();
                for &k in &keys {
                    black_box(map.insert(k, k));
                }
                let e = t.elapsed();
                total += e;
                note("BTreeMap<u64,u64> insert", e, n);
                for k in &keys {
                    map.remove(k);
                }
                done += n;
            }
            total
        })
    });
    g.bench_function("remove", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = BLOCK.min(iters - done);
                let keys: Vec<u64> = (0..n).map(|_| rng.next()).collect();
                for &k in &keys {
                    map.insert(k, k);
                }
                let t = Instant::now();
                for k in &keys {
                    black_box(map.remove(k));
                }
                let e = t.elapsed();
                total += e;
                note("BTreeMap<u64,u64> remove", e, n);
                done += n;
            }
            total
        })
    });
    g.finish();
}

fn print_ratios() {
    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let base = samples
        .get_mut("BTreeMap<u64,u64> insert")
        .filter(|v| !v.is_empty())
        .map(|v| median(v));
    println!();
    println!("book at {PER_SIDE} resting orders per side (median of timed blocks of {BLOCK} ops):");
    println!(
        "{:<34} {:>10} {:>16} {:>14}",
        "operation", "ns/op", "x BTreeMap ins.", "target 200 ns"
    );
    for (name, v) in samples.iter_mut() {
        if v.is_empty() {
            continue;
        }
        let m = median(v);
        let ratio = base.map_or("n/a".to_owned(), |b| format!("{:.2}", m / b));
        let verdict = if name.starts_with("BTreeMap") {
            "(baseline)"
        } else if m < TARGET_NS {
            "MET"
        } else {
            "NOT MET"
        };
        println!("{name:<34} {m:>10.1} {ratio:>16} {verdict:>14}");
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    book_benches(&mut c);
    baseline_benches(&mut c);
    c.final_summary();
    print_ratios();
}
