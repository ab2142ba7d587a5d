//! `baseline-server`: the HTTP ceiling. A plain actix-web 4 server with the market's
//! order routes that parses the same order JSON into a `serde_json::Value` and answers a
//! small JSON, with no Redis and no matching. Whatever rate the harness reaches here is
//! the most the market's HTTP layer could reach on this machine with this client.

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Result;
use serde_json::{json, Value};

/// First stdout line: `<BANNER> http://ADDR`.
pub const BANNER: &str = "baseline listening on";

async fn order(kind: web::Path<String>, body: web::Json<Value>) -> HttpResponse {
    let cost = body.get("cost").cloned().unwrap_or(Value::Null);
    HttpResponse::Ok().json(json!({
        "_key": "1",
        "_id": format!("{}/1", kind.as_str()),
        "status": "created",
        "cost": cost,
    }))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Serves until killed.
pub fn serve(listen: &str, workers: usize) -> Result<()> {
    let host = listen.rsplit_once(':').map(|(h, _)| h).unwrap_or(listen);
    if !crate::loopback::is_loopback_host(host) {
        anyhow::bail!("the baseline server listens on loopback addresses only, not {listen:?}");
    }
    let workers = if workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        workers
    };
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .app_data(web::JsonConfig::default().limit(1 << 20))
                .route("/health", web::get().to(health))
                .route("/_db/market/v0_0/{kind}/", web::post().to(order))
        })
        .workers(workers)
        .bind(listen)?;
        let addr = server.addrs()[0];
        println!("{BANNER} http://{addr}");
        server.run().await?;
        Ok(())
    })
}
