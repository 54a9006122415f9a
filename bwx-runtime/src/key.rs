//! Keys of keyed streams and the stable routing hash.
//!
//! Every keyed operator routes `(key, value)` items to the worker that owns the key, and
//! recovery stores state per key. Both need a hash that gives the same answer in every
//! process, build, version and platform, so bwx never uses `std`'s randomly seeded hasher.
//!
//! # The routing hash
//!
//! `route_hash(key)` is XXH64 with seed 0 over the key's *canonical bytes*:
//!
//! | type | canonical bytes |
//! |---|---|
//! | `u8`…`u64`, `i8`…`i64`, `u128`, `i128` | little-endian bytes of the value |
//! | `usize` / `isize` | as `u64` / `i64` |
//! | `bool` | one byte, 0 or 1 |
//! | `char` | as `u32` |
//! | `String`, `str`, `Vec<u8>`, `[u8; N]` | the bytes, then the length as `u64` |
//! | `()` | nothing |
//! | tuples, `Option<K>` | each field in order (`Option`: tag byte 0 / 1, then the value) |
//!
//! A key owned by worker `w` of `n` satisfies `route_hash(key) % n == w`.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde::de::DeserializeOwned;
use twox_hash::XxHash64;

/// Accumulates a key's canonical bytes (see the [module documentation](self)).
///
/// Short keys (the common case) are gathered in an inline buffer and hashed in one shot;
/// longer ones stream through the hasher. Both give the same XXH64 value.
pub struct KeyHasher {
    inline: [u8; INLINE],
    len: usize,
    streaming: Option<XxHash64>,
}

const INLINE: usize = 64;

impl KeyHasher {
    fn new() -> Self {
        KeyHasher {
            inline: [0; INLINE],
            len: 0,
            streaming: None,
        }
    }

    /// Feeds raw canonical bytes.
    #[inline]
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        if let Some(hasher) = self.streaming.as_mut() {
            hasher.write(bytes);
        } else if self.len + bytes.len() <= INLINE {
            self.inline[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            let mut hasher = XxHash64::with_seed(0);
            hasher.write(&self.inline[..self.len]);
            hasher.write(bytes);
            self.streaming = Some(hasher);
        }
    }

    /// Feeds a length or count as a little-endian `u64`.
    #[inline]
    pub fn write_len(&mut self, len: usize) {
        self.write_bytes(&(len as u64).to_le_bytes());
    }

    #[inline]
    fn finish(&self) -> u64 {
        match &self.streaming {
            Some(hasher) => hasher.finish(),
            None => XxHash64::oneshot(0, &self.inline[..self.len]),
        }
    }
}

/// A type that can key a stream: routed to workers and used to store state.
///
/// Implemented for strings, integers, `bool`, `char`, byte vectors, `Option` and tuples
/// of keys. Implement [`Key::write_canonical`] for your own key types; the rest comes
/// from the supertraits.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a stream key",
    label = "not a `bwx::Key`",
    note = "keys must implement `bwx::Key` (strings, integers, bool, char, byte vectors, Option and tuples of keys do)"
)]
pub trait Key: Clone + Eq + Hash + Ord + Debug + Send + Serialize + DeserializeOwned + 'static {
    /// Writes the key's canonical bytes; they must be equal exactly when the keys are equal.
    fn write_canonical(&self, hasher: &mut KeyHasher);
}

/// The stable routing hash of a key (XXH64, seed 0, over its canonical bytes).
///
/// ```
/// assert_eq!(bwx::route_hash(&"a".to_string()), bwx::route_hash(&"a".to_string()));
/// assert_ne!(bwx::route_hash(&1u32), bwx::route_hash(&2u32));
/// ```
pub fn route_hash<K: Key>(key: &K) -> u64 {
    let mut hasher = KeyHasher::new();
    key.write_canonical(&mut hasher);
    hasher.finish()
}

/// The worker, of `workers`, that owns `key`.
pub fn worker_for_key<K: Key>(key: &K, workers: usize) -> usize {
    (route_hash(key) % workers.max(1) as u64) as usize
}

macro_rules! int_keys {
    ($($t:ty),*) => {$(
        impl Key for $t {
            #[inline]
            fn write_canonical(&self, hasher: &mut KeyHasher) {
                hasher.write_bytes(&self.to_le_bytes());
            }
        }
    )*};
}
int_keys!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl Key for usize {
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        (*self as u64).write_canonical(hasher);
    }
}

impl Key for isize {
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        (*self as i64).write_canonical(hasher);
    }
}

impl Key for bool {
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        hasher.write_bytes(&[u8::from(*self)]);
    }
}

impl Key for char {
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        (*self as u32).write_canonical(hasher);
    }
}

impl Key for () {
    #[inline]
    fn write_canonical(&self, _hasher: &mut KeyHasher) {}
}

impl Key for String {
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        hasher.write_bytes(self.as_bytes());
        hasher.write_len(self.len());
    }
}

impl Key for Vec<u8> {
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        hasher.write_bytes(self);
        hasher.write_len(self.len());
    }
}

impl<const N: usize> Key for [u8; N]
where
    [u8; N]: Serialize + DeserializeOwned,
{
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        hasher.write_bytes(self);
        hasher.write_len(N);
    }
}

impl<K: Key> Key for Option<K> {
    #[inline]
    fn write_canonical(&self, hasher: &mut KeyHasher) {
        match self {
            None => hasher.write_bytes(&[0]),
            Some(k) => {
                hasher.write_bytes(&[1]);
                k.write_canonical(hasher);
            }
        }
    }
}

macro_rules! tuple_keys {
    ($(($($n:tt $t:ident),+)),*) => {$(
        impl<$($t: Key),+> Key for ($($t,)+) {
            #[inline]
            fn write_canonical(&self, hasher: &mut KeyHasher) {
                $(self.$n.write_canonical(hasher);)+
            }
        }
    )*};
}
tuple_keys!((0 A), (0 A, 1 B), (0 A, 1 B, 2 C), (0 A, 1 B, 2 C, 3 D));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_pinned_across_versions() {
        // Pinned values: changing them re-routes every stored key, so they must never change.
        let pinned = [
            route_hash(&String::from("user-1")),
            route_hash(&42u32),
            route_hash(&(1u8, true)),
        ];
        assert_eq!(pinned, PINNED);
    }

    const PINNED: [u64; 3] = [2670091718854583840, 15516826743637085169, 5979733723107334522];

    #[test]
    fn long_keys_stream_to_the_same_hash_as_one_shot() {
        let long = "x".repeat(200);
        let mut bytes = long.clone().into_bytes();
        bytes.extend_from_slice(&200u64.to_le_bytes());
        assert_eq!(route_hash(&long), XxHash64::oneshot(0, &bytes));
    }

    #[test]
    fn width_matters_and_usize_is_u64() {
        assert_ne!(route_hash(&1u32), route_hash(&1u64));
        assert_eq!(route_hash(&7usize), route_hash(&7u64));
    }

    #[test]
    fn string_prefixes_in_tuples_do_not_collide() {
        let a = (String::from("ab"), String::from("c"));
        let b = (String::from("a"), String::from("bc"));
        assert_ne!(route_hash(&a), route_hash(&b));
    }

    #[test]
    fn worker_for_key_is_in_range() {
        for k in 0..1000u32 {
            assert!(worker_for_key(&k, 3) < 3);
        }
        assert_eq!(worker_for_key(&5u32, 1), 0);
    }
}
