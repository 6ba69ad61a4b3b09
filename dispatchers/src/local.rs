//! A group's own map of channel to the connections subscribed there, so
//! that a message from its inbox reaches exactly its subscribers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::room::shrink_vec;

/// A group's own map of channel to the connections (by key) subscribed there.
///
/// Keys are slab keys, small and dense: `pos[key]` is where a key sits in its
/// channel's list, so leaving is O(1) and a mass disconnect stays linear
/// (4 bytes per connection slot). Keys are kept as `u32`, 4 bytes per
/// subscriber in its channel's list. A connection holds one subscription at
/// a time.
#[derive(Debug, Default)]
pub struct LocalSubs {
    by_channel: HashMap<Arc<str>, Vec<u32>>,
    pos: Vec<u32>,
}

impl LocalSubs {
    pub fn update(&mut self, channel: &Arc<str>, key: usize, joined: bool) {
        if joined {
            let keys = self.by_channel.entry(channel.clone()).or_default();
            if self.pos.len() <= key {
                self.pos.resize(key + 1, 0);
            }
            self.pos[key] = keys.len() as u32;
            keys.push(u32::try_from(key).expect("a slot key fits 32 bits"));
        } else if let Some(keys) = self.by_channel.get_mut(channel) {
            let at = self.pos.get(key).map(|&p| p as usize);
            let i = match at {
                Some(i) if keys.get(i).is_some_and(|&k| k as usize == key) => Some(i),
                // Not where the table says: a caller broke the one-subscription
                // rule; find it the slow way rather than corrupt the lists.
                _ => keys.iter().position(|&k| k as usize == key),
            };
            if let Some(i) = i {
                keys.swap_remove(i);
                if let Some(&moved) = keys.get(i) {
                    self.pos[moved as usize] = i as u32;
                }
            }
            if keys.is_empty() {
                self.by_channel.remove(channel);
            }
        }
    }

    /// Gives back room kept from a peak: `keys` is the key space in use now
    /// (the owner's slab capacity). Call from housekeeping, not per event:
    /// it visits every channel.
    pub fn shrink(&mut self, keys: usize) {
        if self.pos.len() > keys {
            self.pos.truncate(keys);
        }
        shrink_vec(&mut self.pos);
        for list in self.by_channel.values_mut() {
            shrink_vec(list);
        }
        if self.by_channel.capacity() > 64 && self.by_channel.len() < self.by_channel.capacity() / 4
        {
            self.by_channel.shrink_to_fit();
        }
    }

    /// Keys subscribed to `channel`, copied so the caller may change the map
    /// while it delivers.
    pub fn keys(&self, channel: &str) -> Vec<usize> {
        self.by_channel
            .get(channel)
            .map_or_else(Vec::new, |keys| keys.iter().map(|&k| k as usize).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_subs_join_and_leave_in_any_order() {
        let mut l = LocalSubs::default();
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        for k in 0..100 {
            l.update(if k % 3 == 0 { &b } else { &a }, k, true);
        }
        // Leave in a scrambled order; the survivors are exactly the rest.
        let leaving: Vec<usize> = (0..100)
            .filter(|k| k % 7 != 0)
            .map(|k| (k * 37) % 100)
            .collect();
        for &k in &leaving {
            l.update(if k % 3 == 0 { &b } else { &a }, k, false);
        }
        let mut left: Vec<usize> = l.keys("a").into_iter().chain(l.keys("b")).collect();
        left.sort();
        let mut want: Vec<usize> = (0..100).filter(|k| !leaving.contains(k)).collect();
        want.sort();
        assert_eq!(left, want);
        assert!(l.keys("a").iter().all(|k| k % 3 != 0));
        // A key that left, joining another channel.
        l.update(&b, leaving[0], true);
        assert!(l.keys("b").contains(&leaving[0]));
        // Leaving a channel it is not on changes nothing.
        l.update(&a, leaving[0], false);
        assert!(l.keys("b").contains(&leaving[0]));
    }

    #[test]
    fn local_subs_shrink_after_a_storm() {
        let mut l = LocalSubs::default();
        let a: Arc<str> = "a".into();
        for k in 0..10_000 {
            l.update(&a, k, true);
        }
        for k in 10..10_000 {
            l.update(&a, k, false);
        }
        l.shrink(16);
        assert!(l.pos.capacity() <= 64);
        assert!(l.by_channel["a"].capacity() <= 64);
        let mut left = l.keys("a");
        left.sort();
        assert_eq!(left, (0..10).collect::<Vec<_>>());
        // Still consistent: leave and join again after shrinking.
        l.update(&a, 3, false);
        l.update(&a, 12_000, true);
        left = l.keys("a");
        left.sort();
        assert_eq!(left, vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 12_000]);
    }
}
