//! A hash map split into shards, so that growing it never moves every entry
//! at once.
//!
//! A `HashMap` that fills up doubles its table: one insert rehashes and
//! moves every entry, and allocates (and the kernel zeroes) a table twice
//! the size. The logins in flight live in such maps under one lock, so that
//! insert stalls every request of the instance: with 229,376 entries of
//! ~340 bytes (a conversation's size) one insert took ~150 ms on the
//! development machine, which showed as the slowest request of a load run.
//! Split into [`SHARDS`] maps, each doubles on its own at 1/[`SHARDS`] of
//! the size: the same total work, in pauses [`SHARDS`] times shorter.
//!
//! The values are boxed, so a growth moves a key and a pointer per entry,
//! not the value. It also keeps memory down: the shards grow in step, so
//! the tables they drop are rarely the size another one needs next, and
//! with the values inline those tables made most of the memory (measured
//! under load: ~1.3 KB per login in flight with one map, ~1.6 KB with
//! 256 unboxed shards, ~1.1 KB boxed).
//!
//! The shard is picked with a hasher of its own, seeded apart from the
//! shards' hashers, so a shard's keys are spread over its table as evenly
//! as over an unsplit one.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};

/// How many maps one table is split into. At the default cap of 500,000
/// logins in flight a shard holds a few thousand entries.
pub(super) const SHARDS: usize = 256;

/// A `HashMap` split into [`SHARDS`] maps, its values boxed (the subset of
/// its API the in-flight tables use).
#[derive(Debug)]
pub(super) struct ShardedMap<K, V> {
    picker: RandomState,
    shards: Vec<HashMap<K, Box<V>>>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        // Empty maps allocate nothing until their first insert.
        Self {
            picker: RandomState::new(),
            shards: std::iter::repeat_with(HashMap::new).take(SHARDS).collect(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // `usize` is at least 32 bits on every target we build for, and
        // `SHARDS` fits in 32 bits: the remainder is below `SHARDS`.
        let index = self.picker.hash_one(key) % SHARDS as u64;
        usize::try_from(index).unwrap_or_default()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards
            .get(self.shard_of(key))?
            .get(key)
            .map(|value| &**value)
    }

    /// The value under `key`, to change in place.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        self.shards
            .get_mut(shard)?
            .get_mut(key)
            .map(|value| &mut **value)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Stores `value` under `key`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard_of(&key);
        let replaced = self.shards.get_mut(shard)?.insert(key, Box::new(value));
        if replaced.is_none() {
            self.len += 1;
        }
        replaced.map(|value| *value)
    }

    /// Takes the value under `key` out.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        let removed = self.shards.get_mut(shard)?.remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed.map(|value| *value)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for shard in &mut self.shards {
            shard.retain(|key, value| keep(key, value));
        }
        self.len = self.shards.iter().map(HashMap::len).sum();
    }

    /// The most entries one shard holds: the most any one insert can move.
    #[cfg(test)]
    pub fn largest_shard(&self) -> usize {
        self.shards.iter().map(HashMap::len).max().unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A small deterministic generator, so a failure can be replayed.
    fn steps(seed: u64) -> impl Iterator<Item = u64> {
        let mut state = seed;
        std::iter::repeat_with(move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        })
    }

    #[test]
    fn behaves_as_one_hash_map() {
        let mut sharded: ShardedMap<String, u64> = ShardedMap::default();
        let mut plain: HashMap<String, u64> = HashMap::new();
        let mut rolls = steps(7);
        for i in 0..20_000 {
            // The operation and the key from separate draws, so that every
            // operation meets every key.
            let (op, key) = (rolls.next().unwrap(), rolls.next().unwrap());
            let key = format!("k{}", key % 3_000);
            let value = i;
            match op % 6 {
                0 | 1 => assert_eq!(sharded.insert(key.clone(), value), plain.insert(key, value)),
                2 => assert_eq!(sharded.remove(key.as_str()), plain.remove(&key)),
                3 => {
                    if let (Some(a), Some(b)) = (sharded.get_mut(key.as_str()), plain.get_mut(&key))
                    {
                        *a += 1;
                        *b += 1;
                    }
                }
                4 => {
                    sharded.retain(|_, v| *v % 97 != 0);
                    plain.retain(|_, v| *v % 97 != 0);
                }
                _ => assert_eq!(sharded.contains_key(key.as_str()), plain.contains_key(&key)),
            }
            assert_eq!(sharded.len(), plain.len());
        }
        for (key, value) in &plain {
            assert_eq!(sharded.get(key.as_str()), Some(value));
        }
    }

    #[test]
    fn no_insert_moves_more_than_a_few_shards_worth_of_entries() {
        let mut map: ShardedMap<String, ()> = ShardedMap::default();
        let entries = 100_000;
        for i in 0..entries {
            map.insert(format!("nut{i}"), ());
        }
        assert_eq!(map.len(), entries);
        // A table doubles by moving what it holds: here at most one shard's
        // worth, which must stay a small part of the whole.
        assert!(
            map.largest_shard() <= entries / 100,
            "largest shard {} of {entries}",
            map.largest_shard()
        );
    }
}
