//! One-at-a-time slots by key: a change in flight on a resource, an approval being
//! resolved. Holding one key's slot never waits on another key, so a slow provider or
//! signal source stalls only the callers of that one resource, never the whole gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::OwnedMutexGuard;

/// Async slots keyed by string. Entries of keys nobody holds are dropped as the map grows.
#[derive(Default)]
pub(crate) struct Slots {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// A held slot; dropping it lets the next caller of the same key in.
pub(crate) type Slot = OwnedMutexGuard<()>;

impl Slots {
    /// Waits for the slot of `key` and holds it until the guard drops.
    pub async fn take(&self, key: &str) -> Slot {
        let lock = {
            // A poisoned map only means another caller panicked mid-insert: the map is
            // still a valid cache of weak references.
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match map.get(key).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    if map.len() >= 1024 {
                        map.retain(|_, w| w.strong_count() > 0);
                    }
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.to_string(), Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_key_waits_for_itself_only() {
        let slots = Arc::new(Slots::default());
        let a = slots.take("sim:service/a").await;
        // Another key is free while `a` is held.
        let b = tokio::time::timeout(Duration::from_secs(1), slots.take("sim:service/b")).await;
        assert!(b.is_ok(), "a different key must not wait");
        // The same key waits until `a` is dropped.
        let s2 = slots.clone();
        let again = tokio::spawn(async move { s2.take("sim:service/a").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!again.is_finished(), "the same key must wait");
        drop(a);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), again)
                .await
                .is_ok()
        );
    }
}
