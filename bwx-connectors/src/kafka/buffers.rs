//! Key and value buffers recycled from the sink to the source on one worker thread.
//!
//! librdkafka owns a consumed message's bytes, and the rdkafka crate ties them to the
//! consumer's queue (a `BorrowedMessage` cannot outlive the poll), so a message that
//! travels through the dataflow needs its key and value in buffers of its own. Holding the
//! native messages instead would need `unsafe` lifetime extension and would pin whole fetch
//! buffers in librdkafka's memory. What can be avoided is the allocation: when
//! [`KafkaSink`](super::KafkaSink) has handed a message to librdkafka (which copies its
//! bytes), it gives the message's key and value buffers back here, and the source copies
//! the next messages into them. A flow that forwards messages from a source to a sink on
//! the same worker thus allocates no key or value buffer per message once it runs.
//!
//! The pools are per thread (a worker runs its source and sink partitions on its thread, so
//! no lock is taken) and bounded, in buffers and in bytes, so that a burst of large
//! messages is not kept after it passed.

use std::cell::RefCell;

use super::serde::MessageField;

/// The most buffers a pool keeps.
const MAX_BUFFERS: usize = 4096;
/// The largest buffer a pool keeps; larger ones are freed.
const MAX_BUFFER_BYTES: usize = 64 * 1024;
/// The most bytes (capacity) a pool keeps.
const MAX_POOL_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Pool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    /// Keys and values in pools of their own, as their sizes usually differ.
    static POOLS: RefCell<[Pool; 2]> = RefCell::default();
}

fn index(field: MessageField) -> usize {
    match field {
        MessageField::Key => 0,
        MessageField::Value => 1,
    }
}

/// `bytes` in a buffer of their own: a recycled one when this thread's pool has one.
pub(crate) fn copy_of(field: MessageField, bytes: &[u8]) -> Vec<u8> {
    let reused = POOLS
        .try_with(|pools| {
            let mut pools = pools.borrow_mut();
            let pool = &mut pools[index(field)];
            let buffer = pool.buffers.pop()?;
            pool.bytes -= buffer.capacity();
            Some(buffer)
        })
        .ok()
        .flatten();
    match reused {
        // A buffer far larger than the bytes would hold memory the item does not need
        // (for as long as a step keeps the item): freed instead.
        Some(mut buffer) if buffer.capacity() <= (bytes.len() * 4).max(256) => {
            buffer.clear();
            buffer.extend_from_slice(bytes);
            buffer
        }
        _ => bytes.to_vec(),
    }
}

/// Gives a buffer whose bytes are no longer needed back to this thread's pool (or frees it
/// when the pool is full or the buffer large).
pub(crate) fn recycle(field: MessageField, buffer: Vec<u8>) {
    let capacity = buffer.capacity();
    if capacity == 0 || capacity > MAX_BUFFER_BYTES {
        return;
    }
    // During thread teardown the pool may be gone: the buffer is simply freed.
    let _ = POOLS.try_with(|pools| {
        let mut pools = pools.borrow_mut();
        let pool = &mut pools[index(field)];
        if pool.buffers.len() < MAX_BUFFERS && pool.bytes + capacity <= MAX_POOL_BYTES {
            pool.bytes += capacity;
            pool.buffers.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_per_field_and_the_pools_are_bounded() {
        let key = copy_of(MessageField::Key, b"k1");
        let value = copy_of(MessageField::Value, b"value one");
        let (key_ptr, value_ptr) = (key.as_ptr(), value.as_ptr());
        recycle(MessageField::Key, key);
        recycle(MessageField::Value, value);
        // The value is copied first into the value buffer, the key into the key buffer.
        let value = copy_of(MessageField::Value, b"value 2");
        let key = copy_of(MessageField::Key, b"k2");
        assert_eq!((&key[..], &value[..]), (&b"k2"[..], &b"value 2"[..]));
        assert_eq!((key.as_ptr(), value.as_ptr()), (key_ptr, value_ptr));
        // Empty pools allocate.
        let fresh = copy_of(MessageField::Key, b"k3");
        assert_ne!(fresh.as_ptr(), key_ptr);
        // A buffer much larger than the bytes is not used for them.
        recycle(MessageField::Key, Vec::with_capacity(4096));
        assert_eq!(copy_of(MessageField::Key, b"k4").capacity(), 2);
        assert!(POOLS.with(|p| p.borrow()[0].buffers.is_empty()));
        // Large buffers are not kept, and a pool keeps at most MAX_POOL_BYTES.
        recycle(MessageField::Value, vec![0; MAX_BUFFER_BYTES + 1]);
        assert!(POOLS.with(|p| p.borrow()[1].buffers.is_empty()));
        for _ in 0..(MAX_POOL_BYTES / MAX_BUFFER_BYTES + 10) {
            recycle(MessageField::Value, vec![0; MAX_BUFFER_BYTES]);
        }
        POOLS.with(|p| {
            let pool = &p.borrow()[1];
            assert_eq!(pool.buffers.len(), MAX_POOL_BYTES / MAX_BUFFER_BYTES);
            assert!(pool.bytes <= MAX_POOL_BYTES);
        });
    }
}
