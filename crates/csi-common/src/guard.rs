//! Per-key operation guards: one operation per volume (or name) at a time.
//!
//! Invariant: [`OperationGuards::try_acquire`] never waits; a second caller for a key in flight
//! gets `Aborted` at once (the CO retries). The key is released when the [`Guard`] drops, even
//! if the operation's task panics.

use crate::error::{Error, Result};
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

/// A set of keys with an operation in flight.
#[derive(Debug, Clone, Default)]
pub struct OperationGuards {
    what: &'static str,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

/// Holds a key until dropped.
#[derive(Debug)]
pub struct Guard {
    key: String,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl OperationGuards {
    /// Guards for keys of one kind, named in the ABORTED message (`"volume"`, `"name"`).
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            in_flight: Arc::default(),
        }
    }

    /// Takes `key`, or answers `Aborted` if an operation on it is in flight.
    pub fn try_acquire(&self, key: &str) -> Result<Guard> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !in_flight.insert(key.to_string()) {
            return Err(Error::aborted(format!(
                "an operation on {} {key:?} is already in progress",
                self.what
            )));
        }
        Ok(Guard {
            key: key.to_string(),
            in_flight: Arc::clone(&self.in_flight),
        })
    }

    /// `Aborted` while an operation on `key` is in flight, without taking it: for a read whose
    /// answer the operation in flight would change (an LV being created is not there yet, but
    /// will be, and "no such volume" would be a wrong answer).
    pub fn check(&self, key: &str) -> Result<()> {
        self.try_acquire(key).map(drop)
    }

    /// Runs `work` in its own task (in the caller's span) holding the guard of `key`, or answers
    /// `Aborted` at once while `key` is taken. A caller that gives up (tonic drops a handler's
    /// future when the client times out) leaves the task, and the guard, to finish the work:
    /// a mutation is never cancelled halfway.
    pub async fn run<T, Fut>(&self, key: &str, work: Fut) -> Result<T>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let guard = self.try_acquire(key)?;
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let result = work.await;
                drop(guard);
                result
            },
            span,
        ))
        .await
        .map_err(|e| Error::internal(format!("operation task failed: {e}")))?
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn second_operation_is_aborted_until_the_first_ends() {
        let guards = OperationGuards::new("volume");
        let first = guards.try_acquire("v1").unwrap();
        let err = guards.try_acquire("v1").unwrap_err();
        assert_eq!(err.kind(), Kind::Aborted);
        assert_eq!(guards.check("v1").unwrap_err().kind(), Kind::Aborted);
        assert!(guards.check("v3").is_ok());
        assert!(guards.try_acquire("v3").is_ok(), "check takes nothing");
        assert!(err.message().contains("volume \"v1\""));
        let other = guards
            .try_acquire("v2")
            .expect("other keys are independent");
        drop(first);
        guards.try_acquire("v1").expect("released on drop");
        drop(other);
    }

    #[test]
    fn released_even_when_the_holder_panics() {
        let guards = OperationGuards::new("volume");
        let g = guards.clone();
        let _ = std::thread::spawn(move || {
            let _guard = g.try_acquire("v1").unwrap();
            panic!("operation failed");
        })
        .join();
        guards.try_acquire("v1").expect("released after panic");
    }

    #[tokio::test]
    async fn run_holds_the_key_until_its_work_ends_even_when_the_caller_gives_up() {
        let guards = OperationGuards::new("volume");
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let caller = tokio::spawn({
            let guards = guards.clone();
            async move {
                guards
                    .run("v1", async move {
                        let _ = released.await;
                        let _ = done.send(());
                        Ok(())
                    })
                    .await
            }
        });
        tokio::task::yield_now().await;
        while guards.try_acquire("v1").is_ok() {
            tokio::task::yield_now().await;
        }
        let err = guards.run("v1", async { Ok(()) }).await.unwrap_err();
        assert_eq!(err.kind(), Kind::Aborted);
        caller.abort(); // the client gave up: the work goes on
        let _ = release.send(());
        finished.await.expect("the work ran to its end");
        while guards.try_acquire("v1").is_err() {
            tokio::task::yield_now().await;
        }
    }
}
