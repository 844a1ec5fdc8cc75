//! The event-level reference simulator (`lstm-dse simulate`): the workload as a graph of
//! operations over (layer, step) - weight loads and per-step weight streams on a DRAM server,
//! input and recurrent products cut into tiles dispatched to a core's units as they free up,
//! element-wise tails on a pipelined tail server, h exchanges and hops on link servers,
//! precision switches on the units - each started when its true dependencies are done and its
//! resource is free. Precision levels are a concrete sequence per layer (not fractions), the
//! level of step s is known when Tail(s-1) ends, and switches are counted where the sequence
//! changes. It shares only the hardware description with the closed form (multiplier rates,
//! `lane_rate`); the timing is computed operation by operation. docs/MODEL.md section 3
//! describes the graph; `test_sim.rs` checks `evaluate` against it.
//!
//! The resources are in `servers.rs`, the choice of plans by [`simulate`] in `choose.rs`; this
//! file builds and walks the graph.

mod choose;
mod servers;

pub use choose::simulate;

use super::arch::Arch;
use super::error::AccelError;
use super::multicore::pipelines;
use super::spec::MulticoreMode;
use super::timing::lane_rate;
use super::workload::Workload;
use servers::{Core, Kind, LayerTimes, Sim};

/// Which schedule a layer runs (the same three as the closed form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimPlan {
    Sequential,
    Overlapped,
    Batched,
}

/// What the simulator reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimResult {
    pub cycles: f64,
    /// Tiles dispatched to units (a measure of the simulation's size).
    pub tiles: u64,
    pub products: u64,
    pub switches: u64,
    pub dram_bytes: f64,
}

/// The processing step of layer `l - 1` after which the inputs of step `s` of layer `l`, run
/// with `plan`, are final (a bidirectional layer's step s covers positions s and T-1-s; a
/// bidirectional layer's output at position p is final after step max(p, T-1-p)); the last
/// for a batched plan, whose one input product at step 0 takes every position.
fn needed_step(w: &Workload, plan: SimPlan, l: usize, s: usize) -> usize {
    let last = w.seq_len - 1;
    if plan == SimPlan::Batched {
        return last;
    }
    let below_bidir = w.layers[l - 1].directions == 2;
    let positions: &[usize] = if w.layers[l].directions == 2 {
        &[s, last - s]
    } else {
        &[s]
    };
    positions
        .iter()
        .map(|&p| if below_bidir { p.max(last - p) } else { p })
        .max()
        .unwrap_or(s)
}

/// `times[step]` of layer `layer` (`what` names the time), which the walk must have set
/// already: it visits the graph in a topological order of its dependencies, so a time still
/// unknown is read before it exists. That is an error in the walk's order, not a time: read as
/// 0 (the times started at 0 until 2026-12-05), it started an operation at the beginning of
/// the run unnoticed.
fn known(
    w: &Workload,
    times: &[f64],
    layer: usize,
    step: usize,
    what: &str,
) -> Result<f64, AccelError> {
    let time = times[step];
    if time.is_nan() {
        return Err(AccelError::Workload {
            workload: w.name.clone(),
            message: format!(
                "simulator: {what} of layer {layer} at step {step} read before it exists (the walk does not follow the dependencies)"
            ),
        });
    }
    Ok(time)
}

/// Simulates `workload` on `arch` with the level sequence `levels[layer][step]` (indices into
/// the workload's precision levels) and one plan for every layer.
pub fn simulate_with(
    arch: &Arch,
    w: &Workload,
    levels: &[Vec<usize>],
    plan: SimPlan,
) -> Result<SimResult, AccelError> {
    simulate_plans(arch, w, levels, &vec![plan; w.layers.len()])
}

/// As [`simulate_with`], with `plans[layer]` the plan of each layer.
pub fn simulate_plans(
    arch: &Arch,
    w: &Workload,
    levels: &[Vec<usize>],
    plans: &[SimPlan],
) -> Result<SimResult, AccelError> {
    w.validate()?;
    if plans.len() != w.layers.len() {
        return Err(AccelError::Workload {
            workload: w.name.clone(),
            message: format!("{} plans for {} layers", plans.len(), w.layers.len()),
        });
    }
    let rates = w
        .precision
        .levels
        .iter()
        .map(|l| lane_rate(arch, w, *l))
        .collect::<Result<Vec<_>, _>>()?;
    let n = u64::from(arch.multicore.cores);
    let mode = if n == 1 {
        MulticoreMode::Multiprogramming
    } else {
        arch.multicore.mode
    };
    let layers = w.layers.len();
    let stages = if mode == MulticoreMode::Multithreading {
        (n as usize).min(layers)
    } else {
        1
    };
    let chip_bpc = arch.dram_bytes_per_cycle();
    let mut sim = Sim {
        arch,
        widest: w.precision.widest_index(),
        rates,
        cores: vec![Core::default(); stages],
        split: if mode == MulticoreMode::Helper { n } else { 1 },
        bpc: chip_bpc
            / if mode == MulticoreMode::Multithreading {
                stages as u64
            } else {
                n
            } as f64,
        result: SimResult::default(),
    };
    let core_of = |l: usize| l * stages / layers;
    let t_len = w.seq_len;
    let mut times: Vec<LayerTimes> = (0..layers).map(|_| LayerTimes::new(t_len)).collect();

    // Program order: layer by layer on one core; in multithreading, by wavefront index
    // d(l, s) = max(d(l, s-1), d(l-1, needed step)) + 1, a topological order of the graph (a
    // batched layer's step 0 after the layer below's last).
    let mut order: Vec<(usize, usize, usize)> = Vec::with_capacity(layers * t_len);
    if mode == MulticoreMode::Multithreading {
        let mut d = vec![vec![0usize; t_len]; layers];
        for l in 0..layers {
            for s in 0..t_len {
                let mut v = if s > 0 { d[l][s - 1] + 1 } else { 0 };
                if l > 0 {
                    v = v.max(d[l - 1][needed_step(w, plans[l], l, s)] + 1);
                }
                d[l][s] = v;
                order.push((v, l, s));
            }
        }
        order.sort_unstable();
    } else {
        for l in 0..layers {
            for s in 0..t_len {
                order.push((0, l, s));
            }
        }
    }
    let plan_of = |l: usize| plans[l];
    let dynamic = w.precision.is_dynamic();
    let act_bytes =
        f64::from(w.precision.widest().activation_bits) / 8.0 * w.precision.dpred_activation_ratio;
    let weight_bytes =
        f64::from(w.precision.widest().weight_bits) / 8.0 * w.precision.dpred_weight_ratio;
    let sram = arch.memory.sram_weight_kib * 1024.0;
    let (b, t) = (w.batch as u64, t_len as u64);
    let mut loaded = vec![f64::NAN; layers];
    let mut stream_bytes = vec![0.0f64; layers];
    let mut run_of = vec![0usize; layers];
    for l in 1..layers {
        run_of[l] = run_of[l - 1] + usize::from(!pipelines(&w.layers[l - 1], &w.layers[l]));
    }
    let mut dram_extra = 0.0;
    for &(_, l, s) in &order {
        let shape = w.layers[l];
        let core = if stages > 1 { core_of(l) } else { 0 };
        let p = plan_of(l);
        let dirs = shape.directions as u64;
        let blocks = 4 * dirs;
        let cells = (shape.hidden_size as u64).div_ceil(sim.split);
        let (hidden, input) = (shape.hidden_size as u64, shape.input_size as u64);
        if s == 0 {
            // The layer's weights: the recurrent matrix stays on chip first; the rest of the
            // input matrix streams every step (per-step products) or once (batched).
            let u = (blocks * cells * hidden) as f64 * weight_bytes;
            let wb = (blocks * cells * input) as f64 * weight_bytes;
            let u_res = u.min(sram);
            let w_res = wb.min(sram - u_res);
            // Step 0 (or the batched product) needs all of them, whatever stays resident.
            let load = u + wb;
            stream_bytes[l] = (u - u_res)
                + if p == SimPlan::Batched {
                    0.0
                } else {
                    wb - w_res
                };
            // Weights of a new run of layers replace the previous run's on this core.
            let same_run_before = (0..l).any(|k| core_of(k) == core && run_of[k] == run_of[l]);
            let ready = if same_run_before || stages == 1 && l == 0 {
                0.0
            } else {
                sim.cores[core].run_done
            };
            let ready = if stages == 1 && l > 0 {
                times[l - 1].last_end
            } else {
                ready
            };
            loaded[l] = sim.dram(core, ready, load);
            let seq = (t * b * dirs * cells) as f64 * act_bytes;
            if l == 0 {
                dram_extra += (t * b * input) as f64 * act_bytes / sim.split as f64;
            }
            if l == layers - 1 {
                dram_extra += seq;
            } else if stages == 1 && seq > arch.memory.sram_activation_kib * 1024.0 {
                dram_extra += 2.0 * seq;
            }
        }
        // The step's weight stream (steps 1..; step 0 uses the load): double-buffered, so it
        // may start once step s-2 is done.
        let stream_of =
            |sim: &mut Sim, times: &Vec<LayerTimes>, step: usize| -> Result<f64, AccelError> {
                if stream_bytes[l] <= 0.0 || step == 0 {
                    return Ok(0.0);
                }
                let free = if step >= 2 {
                    known(w, &times[l].products_done, l, step - 2, "products")?
                } else {
                    0.0
                };
                Ok(sim.dram(core, free, stream_bytes[l]))
            };
        // Inputs of step `step` from the layer below (plus its hop when on another core).
        let input_ready =
            |sim: &mut Sim, times: &Vec<LayerTimes>, step: usize| -> Result<f64, AccelError> {
                if l == 0 {
                    return Ok(0.0);
                }
                let below = l - 1;
                let need = needed_step(w, p, l, step);
                let done = known(w, &times[below].post, below, need, "h")?;
                if stages > 1 && core_of(below) != core {
                    let bytes = (b
                        * w.layers[below].hidden_size as u64
                        * w.layers[below].directions as u64) as f64
                        * act_bytes;
                    // One hop per produced step; the link is a FIFO server.
                    Ok(sim.link(core_of(below), done, bytes))
                } else {
                    Ok(done)
                }
            };
        let level = levels[l][s];
        let switch = dynamic && s > 0 && levels[l][s - 1] != level;
        let (decided, prev_post) = if s > 0 {
            (
                known(w, &times[l].decided, l, s - 1, "level decision")?,
                known(w, &times[l].post, l, s - 1, "h")?,
            )
        } else {
            (0.0, 0.0)
        };
        let stream = if p == SimPlan::Overlapped && s > 0 {
            // Fetched when In(s) was issued early.
            0.0
        } else {
            stream_of(&mut sim, &times, s)?
        };
        let load_done = loaded[l];
        let in_end = match p {
            SimPlan::Batched => {
                if s == 0 {
                    let lv = if dynamic { sim.widest } else { 0 };
                    let ready = input_ready(&mut sim, &times, 0)?.max(load_done);
                    sim.product(
                        core,
                        ready,
                        Kind::Input,
                        lv,
                        blocks,
                        cells,
                        input,
                        b * t,
                        None,
                    )
                } else {
                    0.0
                }
            }
            SimPlan::Sequential => {
                let ready = input_ready(&mut sim, &times, s)?
                    .max(load_done)
                    .max(stream)
                    .max(prev_post);
                let sw = switch.then_some(decided);
                sim.product(core, ready, Kind::Input, level, blocks, cells, input, b, sw)
            }
            SimPlan::Overlapped => {
                if s == 0 {
                    let ready = input_ready(&mut sim, &times, 0)?.max(load_done).max(stream);
                    sim.product(
                        core,
                        ready,
                        Kind::Input,
                        level,
                        blocks,
                        cells,
                        input,
                        b,
                        None,
                    )
                } else {
                    known(w, &times[l].input_done, l, s, "input product")?
                }
            }
        };
        let rec_ready = in_end.max(prev_post).max(load_done).max(stream);
        let rec_switch = (switch && p != SimPlan::Sequential).then_some(decided);
        let rec_end = sim.product(
            core,
            rec_ready,
            Kind::Recurrent,
            level,
            blocks,
            cells,
            hidden,
            b,
            rec_switch,
        );
        // Step s's stream buffer is free once In(s) and Rec(s) are done.
        let products_end = rec_end.max(in_end);
        if p == SimPlan::Overlapped && s + 1 < t_len {
            // The next step's input product, issued before step s+1's level is known.
            let next_stream = stream_of(&mut sim, &times, s + 1)?;
            let ready = input_ready(&mut sim, &times, s + 1)?.max(next_stream);
            let lv = if dynamic {
                sim.widest
            } else {
                levels[l][s + 1]
            };
            let end = sim.product(core, ready, Kind::Input, lv, blocks, cells, input, b, None);
            times[l].input_done[s + 1] = end.max(next_stream);
        }
        let tail_end = sim.tail(core, rec_end.max(in_end), b * dirs * cells);
        let post = if sim.split > 1 {
            let bytes = (b * dirs * cells) as f64 * act_bytes * (sim.split - 1) as f64;
            sim.link(core, tail_end, bytes)
        } else {
            tail_end
        };
        let lt = &mut times[l];
        lt.decided[s] = tail_end;
        lt.post[s] = post;
        lt.products_done[s] = products_end;
        lt.last_end = lt.last_end.max(post).max(products_end);
        let c = &mut sim.cores[core];
        c.run_done = c.run_done.max(post).max(products_end);
    }
    let mut end = times.iter().map(|x| x.last_end).fold(0.0, f64::max);
    // The head's dense layers, one after another on the last core; the last one's outputs
    // go to DRAM.
    let vectors = w.head.vectors(w.batch, w.seq_len);
    for (i, dense) in w.head.layers.iter().enumerate() {
        let core = sim.cores.len() - 1;
        let outputs = (dense.output_size as u64).div_ceil(sim.split);
        let bytes = (outputs * dense.input_size as u64) as f64 * weight_bytes;
        let loaded = sim.dram(core, end, bytes);
        let widest = sim.widest;
        let mv_end = sim.product(
            core,
            loaded,
            Kind::Input,
            widest,
            1,
            outputs,
            dense.input_size as u64,
            vectors,
            None,
        );
        end = if dense.activation {
            sim.tail(core, mv_end, outputs * vectors)
        } else {
            mv_end
        };
        if i + 1 == w.head.layers.len() {
            dram_extra += (outputs * vectors) as f64 * act_bytes;
        }
    }
    sim.result.dram_bytes += dram_extra;
    // Activation traffic (inputs, outputs, spills) is a throughput bound only.
    sim.result.cycles = end.max(sim.result.dram_bytes / (sim.bpc * stages as f64));
    if mode != MulticoreMode::Multithreading {
        // The simulated core stands for n identical ones (copies, or helpers' slices).
        sim.result.dram_bytes *= n as f64;
    }
    Ok(sim.result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::test_support::{arch, uniform};

    /// A time the walk has not set is refused, not read as 0 (the start of the run).
    #[test]
    fn an_unknown_time_is_refused() {
        let w = uniform("unknown", 1, 4, 4, 3);
        let mut times = LayerTimes::new(3);
        let err = known(&w, &times.post, 0, 1, "h").expect_err("unknown");
        assert!(err
            .to_string()
            .contains("h of layer 0 at step 1 read before it exists"));
        times.post[1] = 42.0;
        assert_eq!(known(&w, &times.post, 0, 1, "h"), Ok(42.0));
    }

    /// Batched plans under multithreading (`simulate_plans` only: the schedule computes input
    /// products per step there): a batched layer's one input product needs the layer below's
    /// h of step T-1, and the wavefront order put its step 0 one step behind the layer below's
    /// step 0. The time was read before it existed: as 0 until 2026-12-05 (the layer started
    /// at the beginning of the run), then refused. Now its step 0 comes after the layer
    /// below's last, and with free loads, links and reconfigurations the pipeline runs as one
    /// core does: the second layer after the whole first.
    #[test]
    fn a_batched_layer_in_a_pipeline_waits_for_the_whole_layer_below() {
        let free = [
            "schedule.input_product=batched",
            "schedule.reconfig_cycles=0",
            "memory.dram_gb_per_s=1e9",
            "multicore.link_gb_per_s=1e9",
            "multicore.link_latency_cycles=0",
        ];
        let on = |cores: &str| {
            let mut sets = free.to_vec();
            sets.extend(["multicore.mode=multithreading", cores]);
            arch("sharp", &sets)
        };
        let w = uniform("batched pipeline", 2, 8, 8, 6);
        let levels = vec![vec![0; 6]; 2];
        let run = |a: &Arch| {
            simulate_plans(a, &w, &levels, &[SimPlan::Batched; 2])
                .expect("simulates")
                .cycles
        };
        let (two, one) = (run(&on("multicore.cores=2")), run(&on("multicore.cores=1")));
        assert!(
            (two - one).abs() <= 1e-6 * one,
            "{two} on two cores, {one} on one"
        );
        // The layers do pipeline with per-step plans.
        let per_step = simulate_plans(
            &on("multicore.cores=2"),
            &w,
            &levels,
            &[SimPlan::Sequential; 2],
        )
        .expect("simulates")
        .cycles;
        assert!(per_step < two, "{per_step} per step, {two} batched");
    }
}
