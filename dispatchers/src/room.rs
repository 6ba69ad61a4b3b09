//! Giving back the room a peak of connections left in a collection: after a
//! storm of ten thousand connections, a `Vec` or a slab keeps its capacity
//! until told otherwise. Called from housekeeping, not per event.

use slab::Slab;

/// Shrinks `v` to twice its length when it uses under a quarter of its
/// capacity: what a storm grew is given back, and a list that keeps its size
/// is not reallocated again and again.
pub fn shrink_vec<T>(v: &mut Vec<T>) {
    if v.capacity() > 64 && v.len() < v.capacity() / 4 {
        v.shrink_to(v.len() * 2);
    }
}

/// Shrinks an event loop's slab of connections when it is mostly empty.
pub fn shrink_slab<T>(slab: &mut Slab<T>) {
    let cap = slab.capacity();
    if cap > 1024 && slab.is_empty() {
        // Nothing refers to a key: the whole room can go. (The slab reuses
        // the last key freed first, so after a storm a lone new connection
        // sits on a high key and `shrink_to_fit` below could free nothing.)
        *slab = Slab::new();
    } else if cap > 1024 && slab.len() < cap / 4 {
        // Drops the vacant slots past the last key in use; keys stay valid.
        slab.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slab_left_by_a_storm_is_given_back() {
        let mut s: Slab<u64> = Slab::new();
        let keys: Vec<usize> = (0..10_000).map(|i| s.insert(i)).collect();
        for &k in &keys[..9_990] {
            s.remove(k);
        }
        shrink_slab(&mut s);
        assert!(s.capacity() <= 10_000, "the last keys are in use");
        for &k in &keys[9_990..] {
            assert_eq!(s[k], k as u64, "keys stay valid");
            s.remove(k);
        }
        shrink_slab(&mut s);
        assert_eq!(s.capacity(), 0);
    }
}
