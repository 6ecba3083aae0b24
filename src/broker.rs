//! The broker connection's health, shared by everything that talks to
//! RabbitMQ (the consumer in `ingest`, the lifecycle publisher in `sync`)
//! and reported by `/readyz`: the state, and a watchdog that notices a lost
//! connection even when lapin leaves an operation waiting forever.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Connection;

/// What `/readyz` reports about the broker.
#[derive(Debug, Default)]
pub struct BrokerStatus {
    state: Mutex<BrokerState>,
}

#[derive(Debug, Clone, Default)]
pub struct BrokerState {
    pub connected: bool,
    pub last_error: Option<String>,
}

impl BrokerStatus {
    pub fn get(&self) -> BrokerState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(crate) fn set(&self, connected: bool, error: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.connected = connected;
        if error.is_some() || connected {
            s.last_error = error;
        }
    }
}

/// How long the stages get to end on their own once the connection is lost
/// (a batch may be committing to the database) before they are abandoned.
const CONNECTION_LOST_GRACE: Duration = Duration::from_secs(5);

/// Runs `session` on `conn` until it ends or the connection is lost. A lost
/// connection is reported to `on_lost` at once; the session then gets
/// [`CONNECTION_LOST_GRACE`] to end on its own errors and is dropped
/// otherwise. A session cannot rely on every pending broker operation
/// failing when the connection dies: lapin can leave one waiting forever
/// (the broker-restart fault test hung so about one run in five; by our
/// reading of lapin 4.12.3, an ack queued after the IO loop's stop command,
/// before the channel is poisoned, is neither run nor dropped while the
/// connection's handles live), and the consumer would then neither report
/// the outage nor reconnect. Dropping a session loses nothing: what it has
/// not acked returns to the queue, a transaction it has not committed rolls
/// back, and one it has committed is found again by the event's id when the
/// message comes back.
pub async fn until_connection_lost<T, E: From<lapin::Error>>(
    what: &str,
    conn: &Connection,
    session: impl Future<Output = Result<T, E>>,
    on_lost: impl FnOnce(&lapin::Error),
) -> Result<T, E> {
    let lost = connection_lost(conn);
    tokio::pin!(session, lost);
    let error = tokio::select! {
        result = &mut session => return result,
        error = &mut lost => error,
    };
    on_lost(&error);
    match tokio::time::timeout(CONNECTION_LOST_GRACE, session).await {
        // Ended on its own: its own error (or its clean shutdown) says more.
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(error = %error, grace_ms = CONNECTION_LOST_GRACE.as_millis() as u64,
                "the {what}'s broker connection is lost and its work did not end; abandoning it");
            Err(error.into())
        }
    }
}

/// Resolves once `conn` is unusable: at lapin's error event, or when its
/// state leaves `Connected` (a close for which lapin sends no event).
fn connection_lost(conn: &Connection) -> impl Future<Output = lapin::Error> + Send + 'static {
    let status = conn.status().clone();
    // Listening starts now: lapin sends events only to existing listeners.
    let events = conn.events_listener();
    async move {
        let mut events = std::pin::pin!(events);
        let mut events_open = true;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                event = events.next(), if events_open => match event {
                    Some(lapin::Event::Error(e)) => return e,
                    Some(_) => {}
                    None => events_open = false,
                },
                _ = tick.tick() => {
                    if !status.connected() {
                        let state = if status.errored() {
                            lapin::ConnectionState::Error
                        } else if status.closing() {
                            lapin::ConnectionState::Closing
                        } else {
                            lapin::ConnectionState::Closed
                        };
                        return lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(state));
                    }
                }
            }
        }
    }
}
