//! Round packing: the paper's Algorithm 1, a group-knapsack dynamic program.
//!
//! Each pending request is a group; its items are "do nothing this round" and each allocation
//! of its plan (width = GPUs). An item's value is whether the request still *survives* after
//! the round (it can meet its deadline even at maximum parallelism from the next boundary),
//! plus a secondary value that only breaks ties between packings with as many survivors
//! (see [`TieBreak`](super::TieBreak)). The DP picks at most one item per group, total width
//! at most the capacity, maximising (survivors, secondary) lexicographically.
//!
//! `dp[c]` is the best value using exactly `c` GPUs over the groups seen so far; a rolling
//! array plus one byte of back-pointer per (group, c) makes it O(R * N * |O|) time and
//! O(R * N) bytes. The argmax over `c` takes the smallest `c` among equal values, so GPUs that
//! bring no value are left to the elastic scale-up.

/// Value of an item or a packing, compared lexicographically: survivors first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value {
    pub survivors: u32,
    pub secondary: u64,
}

impl Value {
    fn plus(self, o: Value) -> Value {
        Value {
            survivors: self.survivors + o.survivors,
            secondary: self.secondary + o.secondary,
        }
    }
}

/// The most items a group can have: "none" plus two allocations.
pub const MAX_OPTIONS: usize = 3;

/// One request's choices. Option 0 is "none": width 0.
#[derive(Clone, Copy, Debug)]
pub struct Group {
    widths: [u32; MAX_OPTIONS],
    values: [Value; MAX_OPTIONS],
    len: u8,
}

impl Group {
    /// A group whose only option is "none" with value `none`.
    pub fn new(none: Value) -> Group {
        Group {
            widths: [0; MAX_OPTIONS],
            values: [none; MAX_OPTIONS],
            len: 1,
        }
    }

    /// Adds an allocation option; returns its index. Panics beyond `MAX_OPTIONS`.
    pub fn push(&mut self, width: u32, value: Value) -> usize {
        let i = self.len as usize;
        assert!(
            i < MAX_OPTIONS,
            "at most {} allocations per request",
            MAX_OPTIONS - 1
        );
        self.widths[i] = width;
        self.values[i] = value;
        self.len += 1;
        i
    }

    pub fn options(&self) -> usize {
        self.len as usize
    }

    pub fn width(&self, o: usize) -> u32 {
        self.widths[o]
    }

    pub fn value(&self, o: usize) -> Value {
        self.values[o]
    }
}

/// Reusable buffers, so that a round allocates nothing once warmed up.
#[derive(Default)]
pub struct Packer {
    dp: Vec<Option<Value>>,
    next: Vec<Option<Value>>,
    choice: Vec<u8>,
}

impl Packer {
    /// Chooses one option per group (`out[i]`, 0 = none) with total width at most `capacity`,
    /// maximising the summed value; returns that value.
    pub fn pack(&mut self, groups: &[Group], capacity: u32, out: &mut Vec<usize>) -> Value {
        let n = capacity as usize + 1;
        self.dp.clear();
        self.dp.resize(n, None);
        self.dp[0] = Some(Value::default());
        self.choice.clear();
        self.choice.resize(groups.len() * n, 0);
        for (i, g) in groups.iter().enumerate() {
            self.next.clear();
            self.next.extend_from_slice(&self.dp);
            let row = &mut self.choice[i * n..(i + 1) * n];
            for (c, (slot, back)) in self.next.iter_mut().zip(row.iter_mut()).enumerate() {
                for o in 0..g.options() {
                    let w = g.width(o) as usize;
                    if w > c {
                        continue;
                    }
                    let Some(base) = self.dp[c - w] else { continue };
                    let cand = base.plus(g.value(o));
                    if slot.is_none_or(|best| cand > best) {
                        *slot = Some(cand);
                        *back = o as u8;
                    }
                }
            }
            std::mem::swap(&mut self.dp, &mut self.next);
        }
        // argmax over c; the smallest c among equal values.
        let (mut best_c, mut best) = (0, Value::default());
        for (c, v) in self.dp.iter().enumerate() {
            if let Some(v) = *v
                && v > best
            {
                best = v;
                best_c = c;
            }
        }
        out.clear();
        out.resize(groups.len(), 0);
        let mut c = best_c;
        for i in (0..groups.len()).rev() {
            let o = self.choice[i * n + c] as usize;
            out[i] = o;
            c -= groups[i].width(o) as usize;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: u32, x: u64) -> Value {
        Value {
            survivors: s,
            secondary: x,
        }
    }

    /// Best total value over every combination of options (the exhaustive search).
    fn brute_force(groups: &[Group], capacity: u32) -> Value {
        fn go(groups: &[Group], cap: u32, acc: Value) -> Value {
            let Some((g, rest)) = groups.split_first() else {
                return acc;
            };
            (0..g.options())
                .filter(|&o| g.width(o) <= cap)
                .map(|o| go(rest, cap - g.width(o), acc.plus(g.value(o))))
                .max()
                .expect("none always fits")
        }
        go(groups, capacity, Value::default())
    }

    #[test]
    fn picks_the_packing_that_keeps_most_requests_alive() {
        // Capacity 4. A survives only if it runs on 4 GPUs; B and C each survive only if they
        // run on 2. Running B and C (2 survivors) beats running A (1).
        let mut a = Group::new(v(0, 0));
        a.push(4, v(1, 0));
        let mut b = Group::new(v(0, 0));
        b.push(2, v(1, 0));
        let mut c = b;
        c.push(1, v(0, 0));
        let mut out = Vec::new();
        let best = Packer::default().pack(&[a, b, c], 4, &mut out);
        assert_eq!(best.survivors, 2);
        assert_eq!(out, vec![0, 1, 1]);
    }

    #[test]
    fn secondary_value_breaks_ties_and_idle_gpus_stay_idle_otherwise() {
        // A survives either way; running it is worth 5 secondary units.
        let mut a = Group::new(v(1, 0));
        a.push(2, v(1, 5));
        let mut out = Vec::new();
        assert_eq!(Packer::default().pack(&[a], 8, &mut out), v(1, 5));
        assert_eq!(out, vec![1]);
        // Without a secondary value the DP is indifferent and uses the fewest GPUs.
        let mut a = Group::new(v(1, 0));
        a.push(2, v(1, 0));
        assert_eq!(Packer::default().pack(&[a], 8, &mut out), v(1, 0));
        assert_eq!(out, vec![0]);
    }

    fn group_strategy() -> impl Strategy<Value = Group> {
        (
            0u32..2,
            0u64..4,
            prop::collection::vec(
                (prop::sample::select(vec![1u32, 2, 4, 8]), 0u32..2, 0u64..50),
                0..3,
            ),
        )
            .prop_map(|(s0, x0, opts)| {
                let mut g = Group::new(v(s0, x0));
                for (w, s, x) in opts {
                    g.push(w, v(s.max(s0), x));
                }
                g
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The DP finds the exhaustive optimum, and its reconstruction achieves it within capacity.
        #[test]
        fn dp_matches_exhaustive_search(groups in prop::collection::vec(group_strategy(), 0..7), capacity in 0u32..9) {
            let mut out = Vec::new();
            let best = Packer::default().pack(&groups, capacity, &mut out);
            prop_assert_eq!(best, brute_force(&groups, capacity));
            let used: u32 = groups.iter().zip(&out).map(|(g, &o)| g.width(o)).sum();
            prop_assert!(used <= capacity);
            let achieved = groups.iter().zip(&out).fold(Value::default(), |acc, (g, &o)| acc.plus(g.value(o)));
            prop_assert_eq!(achieved, best);
        }
    }
}
