//! The PostgreSQL harness itself (tests/common/pg.rs): a test database is fresh and
//! usable, and a private server killed with SIGKILL comes back with every committed row
//! and nothing else.

mod common;

use common::{execute, query_i64, rows, OwnPostgres, TestDb};

#[tokio::test]
async fn test_databases_are_fresh_and_separate() {
    let a = TestDb::new().await;
    let b = TestDb::new().await;
    assert_ne!(a.name, b.name);
    assert!(a.url.ends_with(&a.name), "{}", a.url);
    execute(
        &a.url,
        "CREATE TABLE t (id bigint PRIMARY KEY, note text NOT NULL)",
    )
    .await;
    execute(&a.url, "INSERT INTO t VALUES (1, 'one'), (2, 'two')").await;
    assert_eq!(query_i64(&a.url, "SELECT count(*) FROM t").await, 2);
    let got = rows(&a.url, "SELECT id, note FROM t ORDER BY id").await;
    let got: Vec<(i64, String)> = got.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [(1, "one".to_string()), (2, "two".to_string())]);
    // The other database has no such table.
    assert_eq!(
        query_i64(
            &b.url,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn committed_rows_survive_a_sigkill_of_a_private_server() {
    let mut pg = OwnPostgres::start();
    let db = TestDb::on(&pg).await;
    execute(&db.url, "CREATE TABLE t (id bigint PRIMARY KEY)").await;
    execute(&db.url, "INSERT INTO t SELECT generate_series(1, 1000)").await;

    // A transaction left open at the crash: its row must not come back.
    let open = common::connect(&db.url).await;
    open.batch_execute("BEGIN; INSERT INTO t VALUES (5000)")
        .await
        .expect("insert in an open transaction");

    let before = pg.pid();
    pg.kill9();
    assert_eq!(pg.pid(), 0);
    assert!(
        open.simple_query("SELECT 1").await.is_err(),
        "a session survived the SIGKILL"
    );
    pg.start_again();
    assert_ne!(pg.pid(), before);

    assert_eq!(query_i64(&db.url, "SELECT count(*) FROM t").await, 1000);
    assert_eq!(query_i64(&db.url, "SELECT max(id) FROM t").await, 1000);

    // Writable after recovery, and again after crash_and_restart.
    execute(&db.url, "INSERT INTO t VALUES (1001)").await;
    pg.crash_and_restart();
    assert_eq!(query_i64(&db.url, "SELECT count(*) FROM t").await, 1001);
}
