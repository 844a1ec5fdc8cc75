//! The plan choice of [`simulate`]: the plans the arch's schedule names and, with an
//! overlapped tail under dynamic precision or multithreading, the per-layer search between
//! overlapping (at the widest level) and waiting (for the level) that mirrors the closed
//! form's choice.

use super::{simulate_plans, simulate_with, SimPlan, SimResult};
use crate::accel::arch::Arch;
use crate::accel::error::AccelError;
use crate::accel::spec::InputProduct;
use crate::accel::workload::Workload;

/// The plan the arch's schedule names (the closed form's choice between overlapping and
/// waiting for the level is made by running both, see [`simulate`]).
fn plans_of(arch: &Arch, dynamic: bool) -> Vec<SimPlan> {
    // Multithreading computes input products per step (layer l+1 at step t needs h^l_t).
    let mt = arch.multithreading();
    let input_product = if mt {
        InputProduct::PerStep
    } else {
        arch.schedule.input_product
    };
    match (input_product, arch.schedule.overlap_tail) {
        (InputProduct::Batched, _) => vec![SimPlan::Batched],
        (InputProduct::PerStep, false) => vec![SimPlan::Sequential],
        // Overlapping can lose: at the widest level against the step's own (dynamic
        // precision), or in a pipeline whose layers share cores, where an early input product
        // can delay another layer's step. The schedule then waits (docs/MODEL.md section 3).
        (InputProduct::PerStep, true) if dynamic || mt => {
            vec![SimPlan::Overlapped, SimPlan::Sequential]
        }
        (InputProduct::PerStep, true) => vec![SimPlan::Overlapped],
    }
}

/// Simulates with the arch's schedule; with `overlap_tail` under dynamic precision or
/// multithreading, each layer overlaps (at the widest level) or waits for the level,
/// whichever is faster, as the closed
/// form chooses per layer: starting from the faster of all-overlapped and all-waiting, each
/// layer in turn takes the other plan when that shortens the run (layers + 2 simulations).
///
/// In multithreading the layers share cores and run at once, so a whole-run search would be
/// an optimiser over the wavefront, not the schedule's rule: there each layer takes the plan
/// that is faster for the layer alone (simulated on one core with its core's DRAM share), and
/// the run is the faster of that mix and waiting everywhere (docs/MODEL.md section 3).
pub fn simulate(arch: &Arch, w: &Workload, levels: &[Vec<usize>]) -> Result<SimResult, AccelError> {
    let candidates = plans_of(arch, w.precision.is_dynamic());
    let cores = arch.multicore.cores;
    if candidates.len() > 1 && arch.multithreading() && w.layers.len() > 1 {
        let stages = (cores as usize).min(w.layers.len());
        let mut alone = arch.clone();
        alone.multicore.cores = 1;
        alone.memory.dram_gb_per_s /= stages as f64;
        let mut plans = Vec::with_capacity(w.layers.len());
        for (l, (shape, own)) in w.layers.iter().zip(levels).enumerate() {
            let mut one = w.clone();
            one.layers = vec![*shape];
            one.head = Default::default();
            if !w.precision.layer_step_fraction.is_empty() {
                one.precision.layer_step_fraction = vec![w.precision.fractions_for(l).to_vec()];
            }
            let own = std::slice::from_ref(own);
            let mut best: Option<(f64, SimPlan)> = None;
            for &plan in &candidates {
                let r = simulate_with(&alone, &one, own, plan)?;
                if best.is_none_or(|(c, _)| r.cycles < c) {
                    best = Some((r.cycles, plan));
                }
            }
            plans.push(best.map_or(candidates[0], |(_, p)| p));
        }
        let mixed = simulate_plans(arch, w, levels, &plans)?;
        let waiting = simulate_plans(arch, w, levels, &vec![SimPlan::Sequential; plans.len()])?;
        return Ok(if waiting.cycles < mixed.cycles {
            waiting
        } else {
            mixed
        });
    }
    let mut best: Option<(SimResult, Vec<SimPlan>)> = None;
    for &plan in &candidates {
        let plans = vec![plan; w.layers.len()];
        let r = simulate_plans(arch, w, levels, &plans)?;
        if best.as_ref().is_none_or(|(b, _)| r.cycles < b.cycles) {
            best = Some((r, plans));
        }
    }
    let Some((mut result, mut plans)) = best else {
        return Err(AccelError::Workload {
            workload: w.name.clone(),
            message: "no schedule to simulate".into(),
        });
    };
    if candidates.len() > 1 && w.layers.len() > 1 {
        for l in 0..plans.len() {
            let keep = plans[l];
            plans[l] = if keep == candidates[0] {
                candidates[1]
            } else {
                candidates[0]
            };
            let r = simulate_plans(arch, w, levels, &plans)?;
            if r.cycles < result.cycles {
                result = r;
            } else {
                plans[l] = keep;
            }
        }
    }
    Ok(result)
}
