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
pub mod openapi;
pub mod page;
pub mod ratelimit;
pub mod request_id;
pub mod routes;
pub mod views;

use actix_web::{guard, web};

use bodies::BodyClass;

pub use crate::protocol::ROOT;

/// One route: method, path (under the API root when `rooted`), the body class of a route
/// that takes a body, and its handler.
struct Entry {
    method: actix_web::http::Method,
    path: &'static str,
    rooted: bool,
    body: Option<BodyClass>,
    route: fn() -> actix_web::Route,
}

macro_rules! entry {
    ($method:ident $path:literal => $handler:path $(, body $class:expr)?) => {
        Entry {
            method: actix_web::http::Method::$method,
            path: $path,
            rooted: true,
            body: None $(.or(Some($class)))?,
            route: || web::route().to($handler),
        }
    };
}

/// Every route of the API: registered from here and only from here, and checked
/// against the OpenAPI document ([`openapi`]) by a test, so neither lists a route the
/// other does not.
fn entries() -> Vec<Entry> {
    use routes as r;
    use BodyClass as B;
    // Outside the API root (the original market's login path included).
    let top = vec![
        entry!(GET "/health" => r::health),
        entry!(GET "/metrics" => r::metrics),
        entry!(GET "/" => page::page),
        entry!(GET "/assets/{name}" => page::asset),
        entry!(GET "/openapi.json" => openapi::document),
        entry!(GET "/docs" => openapi::docs_page),
        entry!(GET "/docs/{file}" => openapi::docs_asset),
        entry!(POST "/_open/auth" => r::login, body B::Account),
    ];
    let api = vec![
        entry!(POST "/user/signup" => r::signup, body B::Account),
        entry!(POST "/user/renew" => r::renew),
        entry!(POST "/user/logout" => r::logout),
        entry!(POST "/user/password" => r::change_password, body B::Account),
        entry!(GET "/user/{user}/balance" => r::balance),
        entry!(POST "/producer/register" => r::register_producer, body B::Producer),
        entry!(GET "/producer/{user}/stats" => r::producer_stats),
        entry!(POST "/producer/deposit" => r::deposit, body B::Account),
        entry!(POST "/producer/deposit/release" => r::release_deposit, body B::Account),
        entry!(POST "/admin/credit" => r::admin_credit, body B::Account),
        entry!(POST "/statement" => r::push_statement, body B::Statement),
        entry!(GET "/statement" => r::list_statements),
        entry!(GET "/statement/{key}" => r::get_statement),
        entry!(GET "/statement/{key}/trades" => r::trades),
        entry!(POST "/request" => r::push_request, body B::Order),
        entry!(GET "/request" => r::list_requests),
        entry!(GET "/request/{key}" => r::get_request),
        entry!(DELETE "/request/{key}" => r::withdraw_request),
        entry!(POST "/proposal" => r::push_proposal, body B::Order),
        entry!(GET "/proposal" => r::list_proposals),
        entry!(GET "/proposal/{key}" => r::get_proposal),
        entry!(DELETE "/proposal/{key}" => r::withdraw_proposal),
        entry!(POST "/proof" => r::push_proof, body B::Proof),
        entry!(GET "/proof/{key}" => r::get_proof),
        entry!(GET "/book/{key}" => r::book),
        entry!(GET "/cluster" => r::cluster),
        entry!(GET "/events" => live::events),
    ];
    top.into_iter()
        .map(|e| Entry { rooted: false, ..e })
        .chain(api)
        .collect()
}

impl Entry {
    /// The full path as served.
    fn full_path(&self) -> String {
        if self.rooted {
            format!("{ROOT}{}", self.path)
        } else {
            self.path.to_owned()
        }
    }
}

/// Every route as (method, full path), for the OpenAPI test.
pub fn route_list() -> Vec<(String, String)> {
    entries()
        .iter()
        .map(|e| (e.method.to_string(), e.full_path()))
        .collect()
}

/// Registers routes and error mapping.
pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error));
    for e in entries() {
        // A resource per method: a call with another method falls through to the next
        // resource of the path, and finally to `not_found`.
        let mut resource = web::resource(e.full_path())
            .guard(guard::Method(e.method.clone()))
            .route((e.route)());
        if let Some(class) = e.body {
            resource = resource.app_data(class);
        }
        cfg.service(resource);
    }
    cfg.default_service(web::to(routes::not_found));
}
