//! The HTTP API: the original Proof Market v1 REST dialect over actix-web.
//!
//! [`config`] registers every route; the server and the tests both use it, so tests
//! exercise exactly what runs. Repeated and trailing slashes are normalised by the
//! server's `NormalizePath` middleware (`/_db/market//v0_0/request/` works). Every
//! route that takes a body says which kind ([`bodies::BodyClass`]), and so which size
//! limit its body is read under. Calls between nodes are checked by the
//! [`node_auth::check_node_calls`] middleware the server puts in front of all of them.

pub mod bodies;
pub mod caller;
pub mod error;
pub mod forward;
pub mod live;
pub mod log_gate;
pub mod node_auth;
pub mod page;
pub mod ratelimit;
pub mod request_id;
pub mod routes;
pub mod views;

use actix_web::{guard, web};

use crate::domain::Side;

use bodies::BodyClass;

pub use crate::protocol::ROOT;

/// A `POST` route on `path` whose body is read under `class`'s limit.
fn post(path: &str, class: BodyClass, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .guard(guard::Post())
        .app_data(class)
        .route(route)
}

/// Registers routes and error mapping.
pub fn config(cfg: &mut web::ServiceConfig) {
    use routes as r;
    cfg.app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .route("/health", web::get().to(r::health))
        .route("/metrics", web::get().to(r::metrics))
        .route("/", web::get().to(page::page))
        .route("/assets/{name}", web::get().to(page::asset))
        .service(post(
            "/_open/auth",
            BodyClass::Account,
            web::post().to(r::login),
        ))
        .service(
            web::scope(ROOT)
                .service(post(
                    "/user/signup",
                    BodyClass::Account,
                    web::post().to(r::signup),
                ))
                .route("/user/renew", web::post().to(r::renew))
                .route("/user/logout", web::post().to(r::logout))
                .service(post(
                    "/user/password",
                    BodyClass::Account,
                    web::post().to(r::change_password),
                ))
                .service(post(
                    "/producer/register",
                    BodyClass::Producer,
                    web::post().to(r::register_producer),
                ))
                .service(post(
                    "/statement",
                    BodyClass::Statement,
                    web::post().to(r::push_statement),
                ))
                .route("/statement", web::get().to(r::list_statements))
                .route("/statement/{key}", web::get().to(r::get_statement))
                .route("/statement/{key}/trades", web::get().to(r::trades))
                .service(orders(Side::Request))
                .service(orders(Side::Proposal))
                .service(post(
                    "/proof",
                    BodyClass::Proof,
                    web::post().to(r::push_proof),
                ))
                .route("/proof/{key}", web::get().to(r::get_proof))
                .route("/book/{key}", web::get().to(r::book))
                .route("/cluster", web::get().to(r::cluster))
                .route("/events", web::get().to(live::events))
                .route("/user/{user}/balance", web::get().to(r::balance))
                .route("/producer/{user}/stats", web::get().to(r::producer_stats))
                .service(post(
                    "/admin/credit",
                    BodyClass::Account,
                    web::post().to(r::admin_credit),
                ))
                .service(post(
                    "/producer/deposit",
                    BodyClass::Account,
                    web::post().to(r::deposit),
                ))
                .service(post(
                    "/producer/deposit/release",
                    BodyClass::Account,
                    web::post().to(r::release_deposit),
                )),
        )
        .default_service(web::to(r::not_found));
}

/// `/request` or `/proposal`: the same calls over either side of the book.
fn orders(side: Side) -> actix_web::Scope {
    use routes as r;
    web::scope(&format!("/{}", side.as_str()))
        .app_data(web::Data::new(side))
        .service(post("", BodyClass::Order, web::post().to(r::push_order)))
        .route("", web::get().to(r::list_orders))
        .route("/{key}", web::get().to(r::get_order))
        .route("/{key}", web::delete().to(r::withdraw_order))
}
