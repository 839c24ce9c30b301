//! The event queue: the one place that decides the order of events.
//!
//! Events are ordered by time, then by the sequence number they were pushed with. Two events
//! at the same nanosecond therefore pop in the order they were scheduled, on every platform
//! and every run: no float comparison, no hash order, no epsilon.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::time::Nanos;

struct Entry<E> {
    time: Nanos,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// A min-heap of events keyed by (time, sequence number), plus an optional presorted stream
/// of events known in advance (a workload's arrivals).
///
/// The stream behaves exactly as if its events had been pushed first, in order: they hold
/// sequence numbers `0..n`, so at equal times they come before anything pushed later. Keeping
/// them out of the heap keeps the heap as small as the work in flight (a million arrivals
/// would otherwise make every push and pop walk a twenty-level heap through cold memory).
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    next_seq: u64,
    sorted: Vec<(Nanos, E)>,
    cursor: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            sorted: Vec::new(),
            cursor: 0,
        }
    }
}

impl<E: Copy> EventQueue<E> {
    pub fn with_capacity(n: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(n),
            next_seq: 0,
            sorted: Vec::new(),
            cursor: 0,
        }
    }

    /// A queue whose first events are `sorted` (non-decreasing times), as if pushed in order.
    ///
    /// # Panics
    /// If `sorted` is not sorted by time (a caller bug: the engine checks its workload).
    pub fn with_sorted(sorted: Vec<(Nanos, E)>) -> Self {
        assert!(
            sorted.windows(2).all(|w| w[0].0 <= w[1].0),
            "presorted events out of order"
        );
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: sorted.len() as u64,
            sorted,
            cursor: 0,
        }
    }

    pub fn push(&mut self, time: Nanos, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { time, seq, event }));
    }

    /// Whether the next event comes from the presorted stream: it does at equal times, since
    /// its sequence numbers are lower than every pushed event's.
    fn stream_first(&self) -> Option<bool> {
        let s = self.sorted.get(self.cursor).map(|e| e.0);
        let h = self.heap.peek().map(|Reverse(e)| e.time);
        match (s, h) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(s), Some(h)) => Some(s <= h),
        }
    }

    pub fn peek_time(&self) -> Option<Nanos> {
        if self.stream_first()? {
            Some(self.sorted[self.cursor].0)
        } else {
            self.heap.peek().map(|Reverse(e)| e.time)
        }
    }

    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        if self.stream_first()? {
            self.cursor += 1;
            Some(self.sorted[self.cursor - 1])
        } else {
            self.heap.pop().map(|Reverse(e)| (e.time, e.event))
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.sorted.len() - self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut q = EventQueue::default();
        q.push(Nanos(5), "c");
        q.push(Nanos(1), "a");
        q.push(Nanos(5), "d");
        q.push(Nanos(1), "b");
        q.push(Nanos(0), "first");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, vec!["first", "a", "b", "c", "d"]);
    }

    #[test]
    fn a_presorted_stream_orders_as_if_pushed_first() {
        // Stream: a@1, b@5; pushed later: c@1, d@0, e@5. Expected: d, a, c, b, e.
        let mut q = EventQueue::with_sorted(vec![(Nanos(1), "a"), (Nanos(5), "b")]);
        q.push(Nanos(1), "c");
        q.push(Nanos(0), "d");
        assert_eq!(q.peek_time(), Some(Nanos(0)));
        assert_eq!(q.pop(), Some((Nanos(0), "d")));
        q.push(Nanos(5), "e");
        assert_eq!(q.len(), 4);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, vec!["a", "c", "b", "e"]);
        assert!(q.is_empty());
    }

    #[test]
    fn ties_keep_insertion_order_over_many_events() {
        let mut q = EventQueue::default();
        for i in 0..1000u32 {
            q.push(Nanos(u64::from(i % 3)), i);
        }
        let mut last = (Nanos(0), 0u32);
        let mut first = true;
        while let Some((t, i)) = q.pop() {
            if !first {
                assert!(
                    t > last.0 || (t == last.0 && i > last.1),
                    "{t:?} {i} after {last:?}"
                );
            }
            first = false;
            last = (t, i);
        }
    }
}
