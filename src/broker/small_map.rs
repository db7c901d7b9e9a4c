//! A map for the many small maps that an idle broker holds: a session's subscriptions, a
//! topic node's subscribers and children. Most hold a handful of entries, so they live in a
//! vector sized to fit (one small allocation, searched linearly, none while empty); past
//! [`SPILL_AT`] entries they move to a hash map, so that a client with thousands of
//! filters, or a level with thousands of topics, costs no linear search.

use std::borrow::Borrow;
use std::hash::Hash;

use foldhash::{HashMap, HashMapExt};

/// Entries kept in the vector; one more moves them all to a hash map.
const SPILL_AT: usize = 8;

#[derive(Debug)]
pub enum SmallMap<K, V> {
    Few(Vec<(K, V)>),
    Many(HashMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Few(Vec::new())
    }
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    pub fn new() -> Self {
        SmallMap::default()
    }

    pub fn len(&self) -> usize {
        match self {
            SmallMap::Few(entries) => entries.len(),
            SmallMap::Many(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            SmallMap::Few(entries) => entries
                .iter()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            SmallMap::Many(map) => map.get(key),
        }
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            SmallMap::Few(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            SmallMap::Many(map) => map.get_mut(key),
        }
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(&key) {
            return Some(std::mem::replace(slot, value));
        }
        self.push_new(key, value);
        None
    }

    /// The value of `key`, inserting `make()` first when there is none.
    pub fn get_or_insert_with<Q>(&mut self, key: &Q, make: impl FnOnce() -> V) -> &mut V
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Eq + Hash + ?Sized,
    {
        // Looked up twice on insertion: the borrow checker does not accept returning the
        // found slot from a conditional borrow, and insertion is the rare case.
        if self.get(key).is_none() {
            self.push_new(K::from(key), make());
        }
        match self.get_mut(key) {
            Some(value) => value,
            None => unreachable!("inserted above"),
        }
    }

    /// Adds a key known to be absent.
    fn push_new(&mut self, key: K, value: V) {
        match self {
            SmallMap::Few(entries) if entries.len() < SPILL_AT => {
                // Grow one entry at a time: most of these maps stay at one or two entries,
                // and the vector's usual doubling would reserve room for four.
                entries.reserve_exact(1);
                entries.push((key, value));
            }
            SmallMap::Few(entries) => {
                let mut map = HashMap::with_capacity(entries.len() + 1);
                map.extend(entries.drain(..));
                map.insert(key, value);
                *self = SmallMap::Many(map);
            }
            SmallMap::Many(map) => {
                map.insert(key, value);
            }
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            SmallMap::Few(entries) => {
                let index = entries.iter().position(|(k, _)| k.borrow() == key)?;
                let (_, value) = entries.swap_remove(index);
                if entries.is_empty() {
                    // Give the allocation back: an emptied map costs nothing, like a new one.
                    *entries = Vec::new();
                }
                Some(value)
            }
            SmallMap::Many(map) => {
                let value = map.remove(key);
                if map.is_empty() {
                    *self = SmallMap::default();
                }
                value
            }
        }
    }

    pub fn iter(&self) -> Iter<'_, K, V> {
        match self {
            SmallMap::Few(entries) => Iter::Few(entries.iter()),
            SmallMap::Many(map) => Iter::Many(map.iter()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Takes every value out, leaving the map empty.
    pub fn take_values(&mut self) -> Vec<V> {
        match std::mem::take(self) {
            SmallMap::Few(entries) => entries.into_iter().map(|(_, v)| v).collect(),
            SmallMap::Many(map) => map.into_values().collect(),
        }
    }
}

/// Iterator over a [`SmallMap`]'s entries, in no particular order.
pub enum Iter<'a, K, V> {
    Few(std::slice::Iter<'a, (K, V)>),
    Many(std::collections::hash_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(entries) => entries.next().map(|(k, v)| (k, v)),
            Iter::Many(map) => map.next(),
        }
    }
}

impl<'a, K: Eq + Hash, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_entry_across_the_spill_and_back() {
        let mut map: SmallMap<String, usize> = SmallMap::new();
        for i in 0..20 {
            assert_eq!(map.insert(format!("k{i}"), i), None);
            assert_eq!(map.len(), i + 1);
        }
        assert!(matches!(map, SmallMap::Many(_)));
        assert_eq!(map.insert("k3".into(), 33), Some(3));
        assert_eq!(map.get("k3"), Some(&33));
        *map.get_or_insert_with("k20", || 0) += 7;
        assert_eq!(map.get("k20"), Some(&7));
        let mut values: Vec<_> = map.values().copied().collect();
        values.sort_unstable();
        assert_eq!(values.len(), 21);
        for i in 0..=20 {
            assert!(map.remove(format!("k{i}").as_str()).is_some());
        }
        assert!(map.is_empty());
        assert!(matches!(&map, SmallMap::Few(v) if v.capacity() == 0));
    }

    #[test]
    fn a_map_of_one_entry_holds_one_slot() {
        let mut map: SmallMap<u64, u32> = SmallMap::new();
        map.insert(7, 1);
        assert!(matches!(&map, SmallMap::Few(v) if v.capacity() == 1));
        assert_eq!(map.remove(&7), Some(1));
        assert_eq!(map.remove(&7), None);
    }
}
