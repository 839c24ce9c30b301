//! The study behind `tetriserve optimum`: per window of a scenario's workload, the optimum (or
//! the best schedule found and a proven upper bound), the upper bound of `bound.rs`, and what
//! every policy meets; in total, how much of the gap between the policies and the bound is
//! the bound's looseness and how much is the policies' loss.
//!
//! Each policy's schedule is one of the model's (the model relaxes the simulator), so the
//! optimum is at least the best policy's count: the lower end reported is the larger of the
//! two, and a window is open (a range, not proven) while it stays below the search's proven
//! upper bound.

use serde::Serialize;

use super::model::Instance;
use super::solver::solve;
use super::windows;
use crate::error::Result;
use crate::scenario::Scenario;

/// One window's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct WindowRow {
    /// 1-based.
    pub window: usize,
    /// Trace labels of the window's first and last requests.
    pub first_id: u64,
    pub last_id: u64,
    /// Arrival of the first request and latest deadline, seconds.
    pub start_s: f64,
    pub end_s: f64,
    pub requests: usize,
    /// Requests no schedule can meet, even alone on the cluster.
    pub infeasible: usize,
    /// Groups of requests that compete for GPUs, and the largest one's size.
    pub components: usize,
    pub largest_component: usize,
    /// The optimum lies in `optimum_low..=optimum_high`; equal when proven.
    pub optimum_low: usize,
    pub optimum_high: usize,
    pub proven: bool,
    /// What the solver's own schedule meets (before taking the policies' into account).
    pub solver_met: usize,
    pub search_nodes: u64,
    /// `bound.rs`'s upper bound.
    pub bound: usize,
    /// Met requests per policy, in the scenario's policy order.
    pub policies: Vec<PolicyMet>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PolicyMet {
    pub policy: String,
    pub met: usize,
}

impl WindowRow {
    /// The most any policy met in this window.
    pub fn best_policy(&self) -> usize {
        self.policies.iter().map(|p| p.met).max().unwrap_or(0)
    }
}

/// Sums over the windows.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub windows: usize,
    pub requests: usize,
    pub optimum_low: usize,
    pub optimum_high: usize,
    pub proven: bool,
    pub bound: usize,
    pub policies: Vec<PolicyMet>,
    /// The policy with the most met requests over all windows (first in order on ties).
    pub best_policy: String,
    pub best_policy_met: usize,
    /// `bound - optimum`: at least `bound - optimum_high`, at most `bound - optimum_low`.
    pub bound_looseness_low: usize,
    pub bound_looseness_high: usize,
    /// `optimum - best policy`: between the two ends likewise.
    pub policy_loss_low: usize,
    pub policy_loss_high: usize,
}

/// The whole study.
#[derive(Clone, Debug, Serialize)]
pub struct Study {
    pub scenario: String,
    pub window_size: usize,
    pub effort: u64,
    pub rows: Vec<WindowRow>,
    pub totals: Totals,
}

/// Runs the study on `count` windows of `size` requests of the scenario's workload, the
/// solver visiting at most `effort` search nodes per window.
pub fn study(scenario: &Scenario, size: usize, count: usize, effort: u64) -> Result<Study> {
    let workload = scenario.load_workload()?;
    let mut rows = Vec::new();
    for (n, range) in windows::cut(&workload, size, count).into_iter().enumerate() {
        let w = windows::window(&workload, range);
        rows.push(window_row(scenario, &w, n + 1, effort)?);
    }
    let totals = totals(&rows);
    Ok(Study {
        scenario: scenario.origin.clone(),
        window_size: size,
        effort,
        rows,
        totals,
    })
}

fn window_row(
    scenario: &Scenario,
    w: &crate::workload::Workload,
    window: usize,
    effort: u64,
) -> Result<WindowRow> {
    let costs = crate::simulate::resolve_costs(scenario, w)?;
    let inst = Instance::new(w, &costs, &scenario.cluster, scenario.overheads());
    let sol = solve(&inst, effort);
    let bound = crate::bound::upper_bound(
        w,
        &costs,
        scenario.cluster.total_gpus(),
        scenario.cluster.max_degree(),
    );
    let policies: Vec<PolicyMet> = crate::simulate::summarise_workload(scenario, w)?
        .into_iter()
        .map(|s| PolicyMet {
            policy: s.policy,
            met: s.met,
        })
        .collect();
    let best = policies.iter().map(|p| p.met).max().unwrap_or(0);
    let low = sol.lower.max(best);
    Ok(WindowRow {
        window,
        first_id: w.requests.first().map_or(0, |r| r.label),
        last_id: w.requests.last().map_or(0, |r| r.label),
        start_s: w.requests.first().map_or(0.0, |r| r.arrival.as_secs()),
        end_s: w
            .requests
            .iter()
            .map(|r| r.deadline)
            .max()
            .map_or(0.0, |d| d.as_secs()),
        requests: w.len(),
        infeasible: inst.requests - inst.jobs.len(),
        components: sol.components,
        largest_component: sol.largest_component,
        optimum_low: low.min(sol.upper),
        optimum_high: sol.upper,
        proven: low >= sol.upper,
        solver_met: sol.lower,
        search_nodes: sol.nodes,
        bound: bound.met,
        policies,
    })
}

fn totals(rows: &[WindowRow]) -> Totals {
    let sum = |f: &dyn Fn(&WindowRow) -> usize| rows.iter().map(f).sum::<usize>();
    let mut policies: Vec<PolicyMet> = Vec::new();
    for row in rows {
        for p in &row.policies {
            match policies.iter_mut().find(|q| q.policy == p.policy) {
                Some(q) => q.met += p.met,
                None => policies.push(p.clone()),
            }
        }
    }
    let best = policies
        .iter()
        .fold(None::<&PolicyMet>, |b, p| match b {
            Some(b) if b.met >= p.met => Some(b),
            _ => Some(p),
        })
        .cloned()
        .unwrap_or(PolicyMet {
            policy: String::new(),
            met: 0,
        });
    let (low, high, bound) = (
        sum(&|r| r.optimum_low),
        sum(&|r| r.optimum_high),
        sum(&|r| r.bound),
    );
    Totals {
        windows: rows.len(),
        requests: sum(&|r| r.requests),
        optimum_low: low,
        optimum_high: high,
        proven: rows.iter().all(|r| r.proven),
        bound,
        best_policy: best.policy.clone(),
        best_policy_met: best.met,
        bound_looseness_low: bound.saturating_sub(high),
        bound_looseness_high: bound.saturating_sub(low),
        policy_loss_low: low.saturating_sub(best.met),
        policy_loss_high: high.saturating_sub(best.met),
        policies,
    }
}

/// A range `low..=high` as one number when it is one.
fn range(low: usize, high: usize) -> String {
    if low == high {
        low.to_string()
    } else {
        format!("{low}..{high}")
    }
}

impl Study {
    /// The policies compared, in column order.
    fn policy_names(&self) -> Vec<&str> {
        self.totals
            .policies
            .iter()
            .map(|p| p.policy.as_str())
            .collect()
    }

    /// A Markdown table per window, then the totals in sentences.
    pub fn to_table(&self) -> String {
        let names = self.policy_names();
        let mut out = String::new();
        out.push_str("| window | requests | components (largest) | bound | optimum |");
        for n in &names {
            out.push_str(&format!(" {n} |"));
        }
        out.push('\n');
        out.push_str("| --- | --- | --- | --- | --- |");
        out.push_str(&" --- |".repeat(names.len()));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!(
                "| {} ({:.0}-{:.0} s) | {} | {} ({}) | {} | {}{} |",
                r.window,
                r.start_s,
                r.end_s,
                r.requests,
                r.components,
                r.largest_component,
                r.bound,
                range(r.optimum_low, r.optimum_high),
                if r.proven { "" } else { " (open)" },
            ));
            for n in &names {
                let met = r.policies.iter().find(|p| p.policy == *n).map(|p| p.met);
                out.push_str(&format!(" {} |", met.map_or("-".into(), |m| m.to_string())));
            }
            out.push('\n');
        }
        let t = &self.totals;
        out.push_str(&format!(
            "| total | {} | | {} | {}{} |",
            t.requests,
            t.bound,
            range(t.optimum_low, t.optimum_high),
            if t.proven { "" } else { " (open)" },
        ));
        for p in &t.policies {
            out.push_str(&format!(" {} |", p.met));
        }
        out.push_str("\n\n");
        out.push_str(&format!(
            "Bound looseness (bound - optimum): {} of {} requests. Policy loss (optimum - best policy, {} with {}): {}.{}\n",
            range(t.bound_looseness_low, t.bound_looseness_high),
            t.requests,
            t.best_policy,
            t.best_policy_met,
            range(t.policy_loss_low, t.policy_loss_high),
            if t.proven {
                ""
            } else {
                " Open windows: the search did not prove its best schedule optimal within its effort; the optimum lies in the range shown."
            },
        ));
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises") + "\n"
    }

    /// A header and one row per window, then a `total` row.
    pub fn to_csv(&self) -> String {
        let names = self.policy_names();
        let mut out = String::from(
            "window,first_id,last_id,start_s,end_s,requests,infeasible,components,largest_component,bound,optimum_low,optimum_high,proven,solver_met,search_nodes",
        );
        for n in &names {
            out.push_str(&format!(",met_{n}"));
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{}",
                r.window,
                r.first_id,
                r.last_id,
                r.start_s,
                r.end_s,
                r.requests,
                r.infeasible,
                r.components,
                r.largest_component,
                r.bound,
                r.optimum_low,
                r.optimum_high,
                r.proven,
                r.solver_met,
                r.search_nodes
            ));
            for n in &names {
                let met = r.policies.iter().find(|p| p.policy == *n).map(|p| p.met);
                out.push_str(&format!(
                    ",{}",
                    met.map_or(String::new(), |m| m.to_string())
                ));
            }
            out.push('\n');
        }
        let t = &self.totals;
        out.push_str(&format!(
            "total,,,,,{},,,,{},{},{},{},,",
            t.requests, t.bound, t.optimum_low, t.optimum_high, t.proven
        ));
        for p in &t.policies {
            out.push_str(&format!(",{}", p.met));
        }
        out.push('\n');
        out
    }
}
