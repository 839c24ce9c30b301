//! Work conservation (elastic scale-up): idle GPUs left after the round packing go to the
//! units it left waiting, at the cheapest degree of their plan, then to running units whose
//! step time really drops at twice the degree, largest remaining-time saving first.

use crate::policy::View;
use crate::time::Nanos;

use super::Tetriserve;

impl Tetriserve {
    /// Work conservation, first half: units the packing left waiting start on idle GPUs,
    /// earliest deadline first, at the cheapest degree of their plan that is idle (else at
    /// the widest idle degree no wider than their plan that runs a step in the window); the
    /// scale-up then hands out what is left.
    pub(super) fn start_unselected(&mut self, view: &View<'_>, window: Nanos) {
        let mut waiting = std::mem::take(&mut self.unselected);
        waiting.clear();
        waiting.extend(
            self.candidates
                .iter()
                .zip(&self.choice)
                .filter(|&(_, &o)| o == 0)
                .map(|(c, _)| {
                    (
                        view.request(c.batch.ids()[0]).deadline(),
                        c.batch.ids()[0],
                        *c,
                    )
                }),
        );
        waiting.sort_by_key(|&(d, id, _)| (d, id));
        for &(_, _, c) in &waiting {
            let idle = self.placer.idle();
            let planned = c
                .options
                .iter()
                .filter(|&&(k, q)| k > 0 && q > 0 && k <= idle)
                .map(|&(k, _)| k)
                .min();
            let widest = c.options.iter().map(|&(k, _)| k).max().unwrap_or(1).max(1);
            let fallback = || {
                self.table(c.class, c.batch.len())
                    .times
                    .iter()
                    .rev()
                    .find(|&&(k, t)| k <= idle && k <= widest && t <= window)
                    .map(|&(k, _)| k)
            };
            if let Some(k) = planned.or_else(fallback) {
                self.placer
                    .want(c.batch, k, Self::prev_set(view, c.batch), false);
                self.placer
                    .place(&self.cluster, self.variant.placement_preservation);
            }
        }
        self.unselected = waiting;
    }

    /// Work-conserving elastic scale-up of placed units (`late` ones only after the others):
    /// doubling the degree of the unit whose remaining time drops the most, while GPUs idle.
    pub(super) fn scale_up(&mut self, view: &View<'_>, late: bool) {
        loop {
            let idle = self.placer.idle();
            let mut best: Option<(u128, Nanos, usize)> = None;
            for (i, p) in self.placer.placed().iter().enumerate() {
                let k = p.gpus.len();
                if p.late != late || 2 * k > self.cluster.gpus_per_node || k > idle {
                    continue;
                }
                let s = view.request(p.batch.ids()[0]);
                let Some(grown) = self.placer.grown(i, &self.cluster) else {
                    continue;
                };
                let table = self.table(s.class, p.batch.len());
                let (t_now, t_big) = (
                    table.step_on(&self.cluster, p.gpus),
                    table.step_on(&self.cluster, grown),
                );
                if t_big >= t_now {
                    continue;
                }
                let benefit = u128::from(s.remaining_steps()) * u128::from((t_now - t_big).0);
                if best.is_none_or(|(b, d, j)| {
                    benefit > b || (benefit == b && (s.deadline(), i) < (d, j))
                }) {
                    best = Some((benefit, s.deadline(), i));
                }
            }
            let Some((_, _, i)) = best else { return };
            self.placer.grow(i, &self.cluster);
        }
    }
}
