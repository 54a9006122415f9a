//! Reading an async stream (tokio) from a source partition, in batches with a timeout
//! (Bytewax's `batch_async`).

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream as AsyncStream;
use tokio::sync::mpsc;

use super::BatchStatus;

/// Batches an async stream for a source partition's `next_batch`, as Bytewax's
/// `batch_async(aib, timeout, batch_size)`: each [`next_batch`](Self::next_batch) waits
/// until `batch_size` items have arrived or `timeout` has passed, whichever is first.
///
/// The stream runs on its own thread with a single-threaded tokio runtime, so it keeps
/// making progress between calls; up to `batch_size` items wait for the next call, after
/// which the stream waits (backpressure). A `timeout` of zero never waits: a call takes
/// what has arrived. Keep the timeout short (milliseconds): the worker does nothing else
/// while it waits.
///
/// ```
/// use std::time::Duration;
/// use bwx::inputs::{AsyncBatcher, BatchStatus};
///
/// /// An async stream of 1, 2, 3.
/// struct Count(u32);
/// impl futures_core::Stream for Count {
///     type Item = u32;
///     fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<u32>> {
///         self.0 += 1;
///         std::task::Poll::Ready((self.0 <= 3).then_some(self.0))
///     }
/// }
///
/// let mut batcher = AsyncBatcher::new(Count(0), Duration::from_secs(1), 2).unwrap();
/// let mut batch = Vec::new();
/// // The first call waits for a whole batch rather than returning what is there yet.
/// assert_eq!(batcher.next_batch(&mut batch), BatchStatus::Active);
/// assert_eq!(batch, vec![1, 2]);
/// batch.clear();
/// // The stream ends: the last, shorter batch comes with `Eof`.
/// assert_eq!(batcher.next_batch(&mut batch), BatchStatus::Eof);
/// assert_eq!(batch, vec![3]);
/// ```
pub struct AsyncBatcher<T> {
    rx: mpsc::Receiver<T>,
    /// Waits for items with a deadline on the calling thread (a timer only, no I/O).
    waiter: tokio::runtime::Runtime,
    timeout: Duration,
    batch_size: usize,
}

impl<T: Send + 'static> AsyncBatcher<T> {
    /// Starts driving `stream` on a new thread; each [`next_batch`](Self::next_batch)
    /// then hands over up to `batch_size` items (at least 1), waiting at most `timeout`.
    pub fn new<S>(stream: S, timeout: Duration, batch_size: usize) -> std::io::Result<Self>
    where
        S: AsyncStream<Item = T> + Send + 'static,
    {
        let batch_size = batch_size.max(1);
        let driver = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let (tx, rx) = mpsc::channel(batch_size);
        // The thread is detached: it ends when the stream ends or the batcher is dropped.
        std::thread::Builder::new()
            .name("bwx:async-source".into())
            .spawn(move || {
                driver.block_on(async move {
                    let mut stream: Pin<Box<S>> = Box::pin(stream);
                    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                        if tx.send(item).await.is_err() {
                            break;
                        }
                    }
                });
            })?;
        Ok(AsyncBatcher {
            rx,
            waiter,
            timeout,
            batch_size,
        })
    }

    /// Appends up to `batch_size` items to `batch`, returning once that many have arrived
    /// or `timeout` has passed since the call, whichever is first. Returns
    /// [`BatchStatus::Eof`] once the stream has ended and every item was handed over (the
    /// items of that call are in `batch`), otherwise [`BatchStatus::Active`].
    pub fn next_batch(&mut self, batch: &mut Vec<T>) -> BatchStatus {
        let want = batch.len() + self.batch_size;
        // What has arrived already needs no timer.
        while batch.len() < want {
            match self.rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return BatchStatus::Eof,
            }
        }
        if batch.len() == want || self.timeout.is_zero() {
            return BatchStatus::Active;
        }
        let (rx, timeout) = (&mut self.rx, self.timeout);
        self.waiter.block_on(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            while batch.len() < want {
                let limit = want - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(batch, limit)).await {
                    Ok(0) => return BatchStatus::Eof,
                    Ok(_) => {}
                    Err(_elapsed) => break,
                }
            }
            BatchStatus::Active
        })
    }
}

impl<T> Drop for AsyncBatcher<T> {
    fn drop(&mut self) {
        // Closing the channel ends the driving task at its next send.
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll};
    use std::time::Instant;

    use super::*;

    /// `0, 1, ..., end - 1`, one item every `every`, then the end; with `end = None`, one
    /// item and then nothing, ever.
    struct Ticks {
        next: u32,
        end: Option<u32>,
        every: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl Ticks {
        fn new(end: Option<u32>, every: Duration) -> Self {
            Ticks {
                next: 0,
                end,
                every,
                sleep: None,
            }
        }
    }

    impl AsyncStream for Ticks {
        type Item = u32;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            match self.end {
                Some(end) if self.next == end => return Poll::Ready(None),
                None if self.next == 1 => return Poll::Pending,
                _ => {}
            }
            let every = self.every;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
            self.next += 1;
            Poll::Ready(Some(self.next - 1))
        }
    }

    #[test]
    fn every_call_waits_for_a_whole_batch_as_bytewax_batch_async() {
        let ticks = Ticks::new(Some(5), Duration::from_millis(5));
        let mut batcher = AsyncBatcher::new(ticks, Duration::from_secs(30), 2).unwrap();
        let mut batches = Vec::new();
        loop {
            let mut batch = Vec::new();
            let status = batcher.next_batch(&mut batch);
            batches.push(batch);
            if status == BatchStatus::Eof {
                break;
            }
        }
        assert_eq!(batches, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn a_call_returns_what_arrived_once_the_timeout_passes() {
        let ticks = Ticks::new(None, Duration::ZERO);
        let timeout = Duration::from_millis(50);
        let mut batcher = AsyncBatcher::new(ticks, timeout, 10).unwrap();
        let mut batch = Vec::new();
        let start = Instant::now();
        assert_eq!(batcher.next_batch(&mut batch), BatchStatus::Active);
        assert_eq!(batch, vec![0]);
        assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
        batch.clear();
        assert_eq!(batcher.next_batch(&mut batch), BatchStatus::Active);
        assert!(batch.is_empty());
    }

    #[test]
    fn a_zero_timeout_never_waits() {
        let ticks = Ticks::new(Some(1), Duration::from_secs(3600));
        let mut batcher = AsyncBatcher::new(ticks, Duration::ZERO, 10).unwrap();
        let mut batch = Vec::new();
        let start = Instant::now();
        assert_eq!(batcher.next_batch(&mut batch), BatchStatus::Active);
        assert!(batch.is_empty());
        assert!(start.elapsed() < Duration::from_secs(60));
    }
}
