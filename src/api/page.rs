//! The market page: `GET /` and its assets, built into the binary (`src/web/`), or read
//! from `--web-dir` when given (to work on the page without rebuilding the node).

use std::path::PathBuf;

use actix_web::{web, HttpResponse};

use crate::error::MarketError;

use super::error::ApiError;

/// The page's files: name, content type, embedded text.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
];

/// Where the page's files come from.
#[derive(Debug, Clone, Default)]
pub struct WebAssets {
    /// A directory holding `index.html`, `app.js` and `style.css` instead of the built-in
    /// copies.
    pub dir: Option<PathBuf>,
}

/// The page may load only its own scripts and styles and talk only to this node.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn serve(assets: &WebAssets, name: &str) -> Result<HttpResponse, ApiError> {
    let Some((name, ctype, embedded)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Err(MarketError::NotFound(format!("no asset {name}")).into());
    };
    let body = match &assets.dir {
        Some(dir) => tokio::fs::read_to_string(dir.join(name))
            .await
            .map_err(|e| {
                MarketError::Internal(format!("--web-dir {}: {name}: {e}", dir.display()))
            })?,
        None => (*embedded).to_owned(),
    };
    Ok(HttpResponse::Ok()
        .content_type(*ctype)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body))
}

/// `GET /`: the market page.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "The market page", content_type = "text/html", body = String), super::openapi::Errors))]
pub async fn page(assets: web::Data<WebAssets>) -> Result<HttpResponse, ApiError> {
    serve(&assets, "index.html").await
}

/// `GET /assets/{name}`: its script and style sheet.
#[utoipa::path(get, path = "/assets/{name}", tag = "operations",
    params(("name" = String, Path, description = "`app.js` or `style.css`")),
    responses((status = 200, description = "The file", content_type = "text/plain", body = String), super::openapi::Errors))]
pub async fn asset(
    assets: web::Data<WebAssets>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if name.as_str() == "index.html" {
        return Err(MarketError::NotFound("no asset index.html; the page is at /".into()).into());
    }
    serve(&assets, &name).await
}
