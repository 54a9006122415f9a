//! Reading an async stream (tokio) from a source partition without blocking the worker.

use std::pin::Pin;

use futures_core::Stream as AsyncStream;
use tokio::sync::mpsc::{self, error::TryRecvError};

/// Drives an async stream on its own tokio runtime thread and hands its items over in
/// batches. [`next_batch`](Self::next_batch) never blocks: it takes what has arrived.
/// Items are buffered up to `capacity`, after which the async side waits (backpressure).
///
/// ```
/// use bwx_runtime::inputs::AsyncBatcher;
///
/// struct Count(u32);
/// impl futures_core::Stream for Count {
///     type Item = u32;
///     fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<u32>> {
///         self.0 += 1;
///         std::task::Poll::Ready((self.0 <= 3).then_some(self.0))
///     }
/// }
///
/// let mut batcher = AsyncBatcher::spawn(Count(0), 16).unwrap();
/// let mut got = Vec::new();
/// while batcher.next_batch(&mut got, 10) {
///     std::thread::sleep(std::time::Duration::from_millis(1));
/// }
/// assert_eq!(got, vec![1, 2, 3]);
/// ```
pub struct AsyncBatcher<T> {
    rx: mpsc::Receiver<T>,
}

impl<T: Send + 'static> AsyncBatcher<T> {
    /// Starts driving `stream` on a new thread with a single-threaded tokio runtime.
    pub fn spawn<S>(stream: S, capacity: usize) -> std::io::Result<Self>
    where
        S: AsyncStream<Item = T> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        // The thread is detached: it ends when the stream ends or the batcher is dropped.
        std::thread::Builder::new()
            .name("bwx:async-source".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut stream: Pin<Box<S>> = Box::pin(stream);
                    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                        if tx.send(item).await.is_err() {
                            break;
                        }
                    }
                });
            })?;
        Ok(AsyncBatcher { rx })
    }

    /// Moves up to `max` arrived items into `batch`. Returns `false` once the stream has
    /// ended and every item was handed over.
    pub fn next_batch(&mut self, batch: &mut Vec<T>, max: usize) -> bool {
        for _ in 0..max {
            match self.rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }
}

impl<T> Drop for AsyncBatcher<T> {
    fn drop(&mut self) {
        // Closing the channel ends the driving task at its next send.
        self.rx.close();
    }
}
