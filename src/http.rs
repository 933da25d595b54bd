//! HTTP on `http.bind`, served by `run` only: `/healthz`, `/readyz`, `/metrics` (SPEC section 6).
//!
//! One worker and no signal handling of its own: `run` owns SIGTERM/SIGINT and stops the server
//! after the pipeline has drained.

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::health::Health;
use crate::metrics::Metrics;

struct State {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "alive": true }))
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let (ready, reasons) = state.health.readiness();
    state.metrics.ready.set(i64::from(ready));
    let body = json!({ "ready": ready, "reasons": reasons });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics_text(state: web::Data<State>) -> HttpResponse {
    let (ready, _) = state.health.readiness();
    state.metrics.ready.set(i64::from(ready));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// Binds `bind` and starts serving; returns the bound addresses and a handle to stop it.
pub fn serve(
    bind: &str,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Vec<std::net::SocketAddr>, ServerHandle)> {
    let state = web::Data::new(State { health, metrics });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(bind)?;
    let addrs = server.addrs();
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((addrs, handle))
}
