//! The one stop signal of a process's background work: the relay, the consumers, the webhook
//! worker, the scheduler, the metrics listener, the account-change listener and each HTTP
//! connection hold a `Shutdown`; whoever started them holds the `Stop` that ends them. A stop
//! is final, and a `Shutdown` whose `Stop` was dropped counts as stopped (nobody can end the work
//! any more, so it ends now rather than never).

use tokio::sync::watch;

/// Ends the work holding this stop's `Shutdown`s.
#[derive(Debug)]
pub struct Stop(watch::Sender<bool>);

/// What a piece of background work listens to for its end.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new stop signal and the first `Shutdown` that hears it (clone it for more).
pub fn channel() -> (Stop, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Stop(sender), Shutdown(receiver))
}

impl Stop {
    /// Tells every `Shutdown` of this stop to end its work.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Whether the stop was given (or dropped).
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once the stop is given (at once if it was given already, or dropped).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}
