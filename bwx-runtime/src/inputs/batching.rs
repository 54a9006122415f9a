//! Filling a partition's batch from an iterator or a getter (Bytewax's `batch`,
//! `batch_getter` and `batch_getter_ex`), for hand-written `next_batch` methods.

use super::BatchStatus;

/// Moves up to `batch_size` items of `items` into `batch` (Bytewax's `batch`); returns
/// [`BatchStatus::Eof`] once `items` is exhausted (with the last items in `batch`).
///
/// ```
/// use bwx::inputs::{BatchStatus, batch};
///
/// let mut items = 0..5;
/// let mut out = Vec::new();
/// assert_eq!(batch(&mut items, 3, &mut out), BatchStatus::Active);
/// assert_eq!(out, vec![0, 1, 2]);
/// out.clear();
/// assert_eq!(batch(&mut items, 3, &mut out), BatchStatus::Eof);
/// assert_eq!(out, vec![3, 4]);
/// ```
pub fn batch<I: Iterator>(items: &mut I, batch_size: usize, batch: &mut Vec<I::Item>) -> BatchStatus {
    for _ in 0..batch_size.max(1) {
        match items.next() {
            Some(item) => batch.push(item),
            None => return BatchStatus::Eof,
        }
    }
    BatchStatus::Active
}

/// What a getter of [`batch_getter`] gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got<T> {
    /// An item.
    Item(T),
    /// Nothing yet (Bytewax's `yield_on` sentinel): end the batch, ask again later.
    NotYet,
    /// Nothing will come any more (Bytewax's `StopIteration`).
    End,
}

/// `Some(item)` is an item, `None` is "nothing yet".
impl<T> From<Option<T>> for Got<T> {
    fn from(item: Option<T>) -> Self {
        item.map_or(Got::NotYet, Got::Item)
    }
}

/// Calls `getter` until it has given `batch_size` items or says there is nothing yet
/// (Bytewax's `batch_getter`); returns [`BatchStatus::Eof`] once it says the end has come.
///
/// ```
/// use std::collections::VecDeque;
/// use bwx::inputs::{BatchStatus, Got, batch_getter};
///
/// let mut queue = VecDeque::from([1, 2, 3]);
/// let mut out = Vec::new();
/// // `pop_front` gives `None` when the queue is empty: nothing yet.
/// assert_eq!(batch_getter(|| queue.pop_front().into(), 2, &mut out), BatchStatus::Active);
/// assert_eq!(batch_getter(|| queue.pop_front().into(), 2, &mut out), BatchStatus::Active);
/// assert_eq!(out, vec![1, 2, 3]);
/// assert_eq!(batch_getter(|| Got::<u8>::End, 2, &mut Vec::new()), BatchStatus::Eof);
/// ```
pub fn batch_getter<T>(
    mut getter: impl FnMut() -> Got<T>,
    batch_size: usize,
    batch: &mut Vec<T>,
) -> BatchStatus {
    for _ in 0..batch_size.max(1) {
        match getter() {
            Got::Item(item) => batch.push(item),
            Got::NotYet => break,
            Got::End => return BatchStatus::Eof,
        }
    }
    BatchStatus::Active
}

/// How [`batch_getter_ex`] reads an error of its getter (Bytewax's `yield_ex`): "nothing
/// yet", "the end", or a real error.
pub trait GetterError {
    /// Nothing is there yet: end the batch and ask again later (`queue.Empty`).
    fn is_not_yet(&self) -> bool;

    /// Nothing will come any more: the partition is finished.
    fn is_end(&self) -> bool {
        false
    }
}

impl GetterError for std::sync::mpsc::TryRecvError {
    fn is_not_yet(&self) -> bool {
        matches!(self, std::sync::mpsc::TryRecvError::Empty)
    }

    fn is_end(&self) -> bool {
        matches!(self, std::sync::mpsc::TryRecvError::Disconnected)
    }
}

#[cfg(feature = "tokio")]
impl GetterError for tokio::sync::mpsc::error::TryRecvError {
    fn is_not_yet(&self) -> bool {
        matches!(self, tokio::sync::mpsc::error::TryRecvError::Empty)
    }

    fn is_end(&self) -> bool {
        matches!(self, tokio::sync::mpsc::error::TryRecvError::Disconnected)
    }
}

/// A non-blocking read that would block has nothing yet; other I/O errors are errors.
impl GetterError for std::io::Error {
    fn is_not_yet(&self) -> bool {
        self.kind() == std::io::ErrorKind::WouldBlock
    }
}

/// Calls `getter` until it has given `batch_size` items or fails with "nothing yet"
/// (Bytewax's `batch_getter_ex`, for getters such as a channel's `try_recv`); returns
/// [`BatchStatus::Eof`] once it fails with "the end", and passes other errors on (the
/// items gathered before one stay in `batch`).
///
/// ```
/// use std::sync::mpsc;
/// use bwx::inputs::{BatchStatus, batch_getter_ex};
///
/// let (tx, rx) = mpsc::channel();
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// let mut out = Vec::new();
/// assert_eq!(batch_getter_ex(|| rx.try_recv(), 10, &mut out), Ok(BatchStatus::Active));
/// assert_eq!(out, vec![1, 2]);
/// drop(tx);
/// assert_eq!(batch_getter_ex(|| rx.try_recv(), 10, &mut out), Ok(BatchStatus::Eof));
/// ```
pub fn batch_getter_ex<T, E: GetterError>(
    mut getter: impl FnMut() -> Result<T, E>,
    batch_size: usize,
    batch: &mut Vec<T>,
) -> Result<BatchStatus, E> {
    for _ in 0..batch_size.max(1) {
        match getter() {
            Ok(item) => batch.push(item),
            Err(e) if e.is_not_yet() => break,
            Err(e) if e.is_end() => return Ok(BatchStatus::Eof),
            Err(e) => return Err(e),
        }
    }
    Ok(BatchStatus::Active)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_reports_the_end_with_the_last_items() {
        let mut items = vec![1, 2].into_iter();
        let mut out = Vec::new();
        assert_eq!(batch(&mut items, 2, &mut out), BatchStatus::Active);
        assert_eq!(batch(&mut items, 2, &mut out), BatchStatus::Eof);
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn a_getter_error_that_is_neither_not_yet_nor_the_end_is_passed_on() {
        let mut calls = 0;
        let mut out = Vec::new();
        let err = batch_getter_ex(
            || {
                calls += 1;
                match calls {
                    1 => Ok(7),
                    _ => Err(std::io::Error::other("connection reset")),
                }
            },
            10,
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "connection reset");
        assert_eq!(out, vec![7]);
        let would_block = || Err::<u8, _>(std::io::Error::from(std::io::ErrorKind::WouldBlock));
        assert_eq!(
            batch_getter_ex(would_block, 10, &mut Vec::new()).unwrap(),
            BatchStatus::Active
        );
    }
}
