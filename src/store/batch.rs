//! The queue of a group commit, shared by both stores' replay caches: each
//! caller queues an item with a channel for its answer and waits on it
//! without holding a thread; the caller that finds no committer running
//! starts one; the committer takes everything queued, batch after batch, and
//! stops when the queue is empty. A batch so holds every request that
//! arrived during the previous commit.

use std::sync::Mutex;

use tokio::sync::oneshot;

struct State<T, A> {
    pending: Vec<(T, oneshot::Sender<A>)>,
    committing: bool,
}

/// Items of type `T` waiting for an answer of type `A`.
pub(super) struct Queue<T, A> {
    state: Mutex<State<T, A>>,
}

impl<T, A> Default for Queue<T, A> {
    fn default() -> Self {
        Queue {
            state: Mutex::new(State {
                pending: Vec::new(),
                committing: false,
            }),
        }
    }
}

impl<T, A> Queue<T, A> {
    /// Queues `item`: the channel its answer comes on, and whether the
    /// caller must start a committer (none is running).
    pub(super) fn push(&self, item: T) -> (oneshot::Receiver<A>, bool) {
        let (tx, rx) = oneshot::channel();
        let mut s = crate::sync::lock(&self.state);
        s.pending.push((item, tx));
        (rx, !std::mem::replace(&mut s.committing, true))
    }

    /// The committer's next batch: the items and where each answer goes;
    /// `None` when the queue is empty, and the committer then stops.
    pub(super) fn take(&self) -> Option<(Vec<T>, Vec<oneshot::Sender<A>>)> {
        let mut s = crate::sync::lock(&self.state);
        if s.pending.is_empty() {
            s.committing = false;
            return None;
        }
        Some(std::mem::take(&mut s.pending).into_iter().unzip())
    }

    /// Whether a committer is running.
    #[cfg(test)]
    pub(crate) fn committing(&self) -> bool {
        crate::sync::lock(&self.state).committing
    }

    /// Held by a committer: should it panic, the next caller starts another
    /// one instead of waiting for ever.
    pub(super) fn guard(&self) -> Guard<'_, T, A> {
        Guard(self)
    }
}

/// See [`Queue::guard`].
pub(super) struct Guard<'a, T, A>(&'a Queue<T, A>);

impl<T, A> Drop for Guard<'_, T, A> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::sync::lock(&self.0.state).committing = false;
        }
    }
}
