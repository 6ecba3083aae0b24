//! The simulated EAM: a REST system that honours `Idempotency-Key`, in
//! this process, recording when each order arrived.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::{Res, now_us};

/// One order as the EAM received it.
pub struct Received {
    pub external_id: String,
    /// CloudEvents id of the order's first event (from the body template).
    pub first_event: String,
    pub at_us: i64,
}

#[derive(Default)]
pub struct Eam {
    pub orders: Mutex<HashMap<String, Received>>,
    pub posts: AtomicU64,
    /// POSTs that repeated an Idempotency-Key already created.
    pub replays: AtomicU64,
    pub delay: Duration,
}

/// Answers like a REST EAM that honours `Idempotency-Key`: 201 with the new
/// id, or 200 with the same id when the key was seen before.
pub async fn eam_create(eam: web::Data<Eam>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let at_us = now_us();
    eam.posts.fetch_add(1, Ordering::Relaxed);
    let Some(reference) = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return HttpResponse::BadRequest().json(json!({"error": "Idempotency-Key is required"}));
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "body is not JSON"}));
    };
    if !eam.delay.is_zero() {
        tokio::time::sleep(eam.delay).await;
    }
    let mut orders = eam.orders.lock().unwrap_or_else(|p| p.into_inner());
    let n = orders.len();
    let mut created = false;
    let order = orders.entry(reference).or_insert_with(|| {
        created = true;
        Received {
            external_id: format!("WO-{:07}", n + 1),
            first_event: doc["first_event"].as_str().unwrap_or_default().to_owned(),
            at_us,
        }
    });
    let reply = json!({"id": order.external_id, "status": "OPEN"});
    if created {
        HttpResponse::Created().json(reply)
    } else {
        eam.replays.fetch_add(1, Ordering::Relaxed);
        HttpResponse::Ok().json(reply)
    }
}

/// Starts the EAM on a free port; returns its server handle and port.
pub fn start_eam(eam: web::Data<Eam>) -> Res<(actix_web::dev::ServerHandle, u16)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server =
        HttpServer::new(move || App::new().app_data(eam.clone()).route("/api/orders", web::post().to(eam_create)))
            .workers(1)
            .listen(listener)?
            .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((handle, port))
}
