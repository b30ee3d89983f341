//! Lease identity and timing.
//!
//! A lease id is a 32-character lowercase hex string, shaped like the `uuid4().hex`
//! ids of leasepool 0.1.1 but costing no randomness per lease: the first 16 digits
//! are a salt drawn once per manager, the last 16 a counter. The counter is the
//! lease's [`LeaseKey`], so turning an id back into a key is a parse, not a lookup.
//! A [`LeaseId`] is two integers and is spelled out only when shown: granting a
//! lease formats and allocates nothing.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// The engine's handle on a lease: unique within one manager for its whole life.
pub type LeaseKey = u64;

/// Live leases by key. A hash map that keeps its capacity: the steady state of
/// grant/release allocates nothing (a `BTreeMap` allocates a node whenever it goes
/// from empty to one entry, which is every uncontended lease). Iteration order is
/// arbitrary: whoever reports leases in grant order sorts by key.
pub(crate) type LeaseMap<V> = HashMap<LeaseKey, V, BuildHasherDefault<KeyHasher>>;

/// Hashes a [`LeaseKey`] (a counter the engine mints, not attacker-chosen) with one
/// multiply and a fold: Fibonacci hashing spreads the keys over the table, and
/// folding the high half down makes the low bits (which pick the bucket) depend on
/// every bit of the key, so keys with a power-of-two stride do not collide.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in byte by byte.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, key: u64) {
        let product = (self.0 ^ key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = product ^ (product >> 32);
    }
}

/// Mints lease ids for one manager.
#[derive(Debug, Clone)]
pub struct LeaseIdMint {
    salt: u64,
    next: LeaseKey,
}

impl Default for LeaseIdMint {
    fn default() -> Self {
        Self::new()
    }
}

impl LeaseIdMint {
    /// A mint with a fresh random salt.
    #[must_use]
    pub fn new() -> Self {
        // RandomState is seeded from the OS once per process and then perturbed per
        // instance, which is all the unpredictability an id needs.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x6c65_6173_6570_6f6f);
        Self {
            salt: hasher.finish(),
            next: 1,
        }
    }

    /// The next key and its id.
    pub fn mint(&mut self) -> (LeaseKey, LeaseId) {
        let key = self.next;
        self.next += 1;
        (key, self.id(key))
    }

    /// The id of `key`.
    #[must_use]
    pub fn id(&self, key: LeaseKey) -> LeaseId {
        LeaseId {
            salt: self.salt,
            key,
        }
    }

    /// The id string of `key`.
    #[must_use]
    pub fn format(&self, key: LeaseKey) -> String {
        self.id(key).hex().as_str().to_owned()
    }

    /// The key of an id minted here, or `None` for any other string.
    #[must_use]
    pub fn parse(&self, id: &str) -> Option<LeaseKey> {
        if id.len() != 32 || !id.is_ascii() {
            return None;
        }
        let (salt, key) = id.split_at(16);
        let salt_ok = u64::from_str_radix(salt, 16).ok() == Some(self.salt);
        let key = u64::from_str_radix(key, 16).ok()?;
        // Reject non-canonical spellings (upper case) so parse(format(k)) is the only way in.
        (salt_ok && key < self.next && self.id(key).hex().as_str() == id).then_some(key)
    }
}

/// A lease's public id: 32 lowercase hex digits (a per-manager salt, then the
/// lease's key), spelled out only when shown ([`hex`](Self::hex), `Display`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId {
    salt: u64,
    key: LeaseKey,
}

impl LeaseId {
    /// The engine key this id names.
    #[must_use]
    pub fn key(self) -> LeaseKey {
        self.key
    }

    /// The id's 32 hex digits, on the stack.
    #[must_use]
    pub fn hex(self) -> LeaseIdHex {
        // Hand-rolled: `format!("{:016x}")` costs several hundred instructions per id;
        // this is a table lookup per digit.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 32];
        for (half, value) in [self.salt, self.key].into_iter().enumerate() {
            for i in 0..16 {
                let nibble = (value >> (60 - 4 * i)) & 0xf;
                digits[half * 16 + i] = DIGITS[usize::try_from(nibble).unwrap_or(0)];
            }
        }
        LeaseIdHex(digits)
    }
}

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl std::fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaseId({self})")
    }
}

/// The spelled-out [`LeaseId`]: 32 ASCII hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LeaseIdHex([u8; 32]);

impl std::fmt::Debug for LeaseIdHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaseIdHex({:?})", self.as_str())
    }
}

impl LeaseIdHex {
    /// The digits as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Every byte is one of `DIGITS` (ASCII), so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// When a lease was granted and when it stops accepting work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseTiming {
    /// Monotonic seconds at the grant.
    pub leased_at: f64,
    /// Soft lifetime in seconds.
    pub lease_seconds: f64,
    /// Extra seconds after the soft expiry before the lease is revoked.
    pub grace_seconds: f64,
}

impl LeaseTiming {
    /// End of the soft lifetime.
    #[must_use]
    pub fn soft_expires_at(&self) -> f64 {
        self.leased_at + self.lease_seconds
    }

    /// The moment the lease stops accepting work and may be revoked.
    #[must_use]
    pub fn hard_expires_at(&self) -> f64 {
        self.soft_expires_at() + self.grace_seconds
    }

    /// Whether the hard expiry has passed at `now`.
    #[must_use]
    pub fn is_hard_expired(&self, now: f64) -> bool {
        now >= self.hard_expires_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut mint = LeaseIdMint::new();
        let (k1, id1) = mint.mint();
        let (k2, id2) = mint.mint();
        assert_ne!(id1, id2);
        assert_eq!((id1.key(), id2.key()), (k1, k2));
        let (id1, id2) = (id1.to_string(), id2.to_string());
        assert_eq!(id1.len(), 32);
        assert_eq!(mint.parse(&id1), Some(k1));
        assert_eq!(mint.parse(&id2), Some(k2));
        assert_eq!(mint.parse("nope"), None);
        assert_eq!(mint.parse(&id1.to_uppercase()), None);
        let other = LeaseIdMint::new();
        assert_eq!(other.parse(&id1), None);
        assert_eq!(mint.parse(&mint.format(99)), None, "never minted");
        assert_eq!(
            mint.format(0xab),
            format!("{:016x}{:016x}", mint.salt, 0xab)
        );
    }
}
