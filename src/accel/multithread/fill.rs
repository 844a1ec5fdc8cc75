//! The fill of a segment: a layer joins it, and every chain through the segment so far moves
//! past the layer's step 0 (docs/MODEL.md section 4). On its core the layer's first job comes
//! after the jobs of the layers before it in the round it joins, and no earlier than its own
//! weights are loaded; its step 0 then takes its own step and edge (less the part of its first
//! weight stream that the wait hid), and its h hops to the next core. A shared core's DRAM
//! share serves its loads and streams in wavefront order, and a core whose input comes from
//! another shared core receives it at that core's pace, not its own.

use super::{Arrival, Crossing, FirstLayer, Joining, Pipeline, Segment, SegmentLayer, Streamer};
use crate::accel::layer::LayerCost;
use crate::accel::shared::{self, CoreLayer};

impl Segment {
    /// Layer `joining.layer`, which costs `cost` on its own, joins the segment on its stage.
    pub(super) fn add(&mut self, pipe: &Pipeline, joining: &Joining, cost: &LayerCost) {
        let (i, j) = (joining.layer, joining.stage);
        let (t, rho, seq_len) = (pipe.t, pipe.rho, pipe.seq_len());
        if self.stages[j].layers == 0 && i > self.start {
            self.arrive(pipe, i, j);
        }
        let stage = &mut self.stages[j];
        stage.fill_ahead_cycles = stage.fill_ahead_cycles.min(self.fill_cycles);
        stage.step_cycles = stage.step_cycles.max(cost.step_cycles);
        stage.last_step_cycles = cost.step_cycles;
        stage.layers += 1;
        // Only a layer alone on its core in the segment: the loads and streams of co-resident
        // layers are interleaved on the core's DRAM share in wavefront order.
        let shares_core = stage.layers > 1 || joining.next_shares_core;
        stage.stream_cycles += cost.stream_cycles;
        stage.load_cycles += cost.load_cycles;
        // The layer's first product waits for its own weights only: a core loads its layers
        // one after another (its DRAM share is one server), each as soon as the core finished
        // the previous segment, while the layers loaded before compute.
        // The core's DRAM share is a FIFO in program order (wavefront order): the streams its
        // earlier layers issued before this layer's first job (layer k's steps 1..=i-k, and
        // step i-k+1 when its plan issues the next step's input product early) come before
        // this layer's load. That queue is a second path (`queued_chain`, compute-paced rounds
        // after it; docs/MODEL.md section 4, "A later layer's load behind its core's
        // streams"): the streams it holds are on the core's stream path already.
        let issued: f64 = (stage.streamers.iter())
            .map(|s| {
                let n = ((i - s.layer) + usize::from(s.overlapped)).min(seq_len - 1);
                n as f64 * s.stream_cycles
            })
            .sum();
        stage.streamers.push(Streamer {
            layer: i,
            stream_cycles: cost.stream_cycles,
            overlapped: cost.overlapped,
        });
        let load_end = joining.core_free + stage.load_cycles;
        self.queued |= issued > 0.0;
        // The layer's per-level figures are on the common levels (`levels.rs`).
        let compute_step: f64 = (pipe.workload.precision.step_fraction.iter())
            .zip(&cost.level_compute)
            .map(|(f, c)| f * c)
            .sum();
        stage.compute_step_cycles = stage.compute_step_cycles.max(compute_step);
        // A core issues its products in wavefront order: this layer's first step comes after
        // one step of each layer before it on the core (the round it joins, where the layer
        // has that step), not right after the step it waits for. Those steps are ready once
        // the step it waits for is done, and run while its weights still load: they delay it
        // only past the end of its load. Each as it is: a layer's last step has no next input
        // product, and this layer's step 0 starts with its input product whatever its plan
        // (docs/MODEL.md section 4, "A shared core's last jobs").
        let none = |_: usize| f64::NEG_INFINITY;
        let ahead = shared::ahead(&stage.jobs, rho, seq_len, &none);
        if t >= 2.0 {
            self.wait_for_jobs_ahead(pipe, j, ahead, cost);
        }
        let stage = &mut self.stages[j];
        if stage.layers == 1 {
            stage.first = FirstLayer {
                input_at: self.chain,
                busy_cycles: cost.busy_cycles,
                load_cycles: cost.load_cycles,
                stream_cycles: cost.stream_cycles,
            };
        }
        self.chain = self.chain.max(load_end);
        // The load delays the layer's step 0, and so the paths that walk its stage or a later
        // one; a path that walks an earlier stage passes the layer at its last step, when the
        // load is long done (that stage's rounds run while the layer's weights load, and the
        // load's own path walks this stage or a later one; docs/MODEL.md section 4, "A later
        // core's load").
        self.paths_from_mut(j).for_each(|at| *at = at.max(load_end));
        self.queued_chain = self.queued_chain.max(load_end + issued);
        let stage = &mut self.stages[j];
        stage.busy_cycles += cost.busy_cycles;
        stage.last_busy_cycles = cost.busy_cycles;
        for (slack, level) in stage.level_slack.iter_mut().zip(&cost.level_slack) {
            *slack = slack.min(*level);
        }
        if pipe.dynamic {
            stage.layer_level_busy.push(cost.level_busy);
            for k in 0..pipe.level_count {
                stage.level_step[k] = stage.level_step[k].max(cost.level_step[k]);
                stage.level_busy[k] += cost.level_busy[k];
                stage.level_compute[k] = stage.level_compute[k].max(cost.level_compute[k]);
                stage.level_first[k] += cost.level_first[k];
                stage.level_last[k] += cost.level_last[k];
            }
        }
        // The edge is the layer's total less T own steps: negative where its own steps, paced
        // by its stream, overstate a compute-bound total. A core that shares its units between
        // layers runs its rounds at the sum of their busy cycles or streams, not at that pace:
        // the credit is taken at the segment's end, as far as the core's streams set its
        // rounds (else a shorter stream, shortening the own step more than the total, would
        // lengthen the fill: docs/MODEL.md section 4).
        // With one step there are no rounds: the layer takes its total.
        // The compute-bound path's own negative edge (a tail shorter than a reconfiguration)
        // is no stream's: the h of step 0 does come that early, and is kept.
        let edge = if shares_core && t >= 2.0 {
            let kept = cost.edge_cycles.max(cost.compute_edge_cycles.min(0.0));
            stage.edge_credit_cycles += cost.edge_cycles - kept;
            kept
        } else {
            cost.edge_cycles
        };
        self.fill_cycles += edge + cost.step_cycles;
        stage.jobs.push(CoreLayer {
            input_cycles: cost.input_cycles,
            recurrent_cycles: cost.recurrent_cycles,
            busy_cycles: cost.busy_cycles,
            post_cycles: cost.post_cycles,
            clamp_cycles: edge - cost.edge_cycles,
            overlapped: cost.overlapped,
        });
        // The first weight stream follows the load on the DRAM server: the time between the
        // end of the load and the layer's first product hides it.
        let prefetched = if shares_core {
            0.0
        } else {
            cost.first_stream_cycles.min(self.chain - load_end)
        };
        stage.stream_credit_cycles += prefetched;
        let own = edge - prefetched + cost.step_cycles;
        self.chain += own;
        self.paths_mut().for_each(|at| *at += own);
        let prefetched_q = if shares_core {
            0.0
        } else {
            cost.first_stream_cycles.min(self.queued_chain - load_end)
        };
        self.queued_chain += edge - prefetched_q + cost.step_cycles;
        self.stages[j].dram_bound_cycles += cost.dram_bound_cycles;
        self.hop(pipe, joining, cost, (ahead, load_end), (edge, shares_core));
    }

    /// The first layer of a core after another in the segment: its inputs come at the pace of
    /// the core before (the h of that core's last layer, step by step, past the chain's point
    /// here, which is its step 0's h and the hop). The jobs ahead of the core's later layers
    /// wait for them (docs/MODEL.md section 4, "Two shared cores in a row").
    fn arrive(&mut self, pipe: &Pipeline, i: usize, j: usize) {
        let (rho, seq_len) = (pipe.rho, pipe.seq_len());
        let p = pipe.stage_of(i - 1);
        let before = &self.stages[p];
        let core = &before.jobs;
        let busy = before.busy_cycles + shared::steady_wait(core, rho) - shared::carried(core, rho);
        let pace = (self.max_hop_cycles)
            .max(before.step_cycles)
            .max(before.stream_cycles);
        let rounds = shared::Rounds::of(core, busy, before.last_step_cycles, pace, rho, seq_len);
        // The crossings that may be the longest: near the end, where the rounds of either
        // core change (its last rounds, and the steps the jobs ahead wait for). Resident
        // weights only: a core's streams have their own path (its DRAM share's FIFO).
        let width = before.layers + 2 * pipe.stages + 2;
        let last = seq_len - 1;
        if before.stream_cycles <= 0.0 {
            let base = self.chain_at[j];
            self.stages[j].crossings = (last.saturating_sub(width).max(1)..=last)
                .map(|r| Crossing {
                    step: r,
                    chain_cycles: base + rounds.until(r),
                })
                .collect();
        }
        self.stages[j].arrival = Some(Arrival {
            chains: self.chain_at.clone(),
            rounds,
        });
    }

    /// Moves every chain past the jobs `ahead` of layer `cost`'s first on its core `j`: at the
    /// core's own pace on the paths that reach it so (`chain`, `queued_chain`, the fill), at
    /// the pace its inputs arrive from the core before on the paths that walk that core.
    fn wait_for_jobs_ahead(&mut self, pipe: &Pipeline, j: usize, ahead: f64, cost: &LayerCost) {
        let (rho, seq_len) = (pipe.rho, pipe.seq_len());
        self.fill_cycles += ahead;
        self.chain += ahead;
        self.queued_chain += ahead;
        let stage = &self.stages[j];
        for (p, at) in self.chain_at.iter_mut().enumerate() {
            *at += match &stage.arrival {
                Some(Arrival { chains, rounds }) if p >= j => {
                    let arrival = |s: usize| chains[p] + rounds.until(s) - *at;
                    shared::ahead(&stage.jobs, rho, seq_len, &arrival)
                }
                _ => ahead,
            };
        }
        // On the crossed core, a later layer's job at step r >= 1 starts with its recurrent
        // product when overlapped (its input product ran in its job before).
        let later = cost.overlapped && self.stages[j].layers >= 2;
        for (k, stage) in self.stages.iter_mut().enumerate() {
            let (crossings, arrival, jobs) = (&mut stage.crossings, &stage.arrival, &stage.jobs);
            for Crossing { step, chain_cycles } in crossings {
                *chain_cycles += match arrival {
                    Some(Arrival { chains, rounds }) if k == j => {
                        let arrival =
                            |s: usize| chains[k] + rounds.until(s + *step) - *chain_cycles;
                        let steps = seq_len - *step;
                        shared::ahead_later(jobs, rho, steps, &arrival, later)
                            - if later { cost.input_cycles + rho } else { 0.0 }
                    }
                    _ => ahead,
                };
            }
        }
    }

    /// The layer's h leaves its step 0: the walked paths take it (dynamic precision), and where
    /// it passes to the next core in the segment every chain takes the hop.
    fn hop(
        &mut self,
        pipe: &Pipeline,
        joining: &Joining,
        cost: &LayerCost,
        (ahead, load_end): (f64, f64),
        (edge, shares_core): (f64, bool),
    ) {
        let precision = &pipe.workload.precision;
        let j = joining.stage;
        // The layer's last step, at the last step's levels when they are known.
        let own_last = if pipe.dynamic && !precision.last_step_fraction.is_empty() {
            (precision.last_step_fraction.iter())
                .zip(cost.level_step.iter().zip(&cost.level_busy))
                .map(|(f, (step, busy))| f * step.min(busy + cost.post_cycles))
                .sum()
        } else {
            cost.step_cycles.min(cost.busy_cycles + cost.post_cycles)
        };
        let passes = joining
            .passes_hop_cycles
            .map_or(0.0, |hop| pipe.link_latency_cycles + hop);
        if pipe.dynamic {
            let own = (edge + cost.step_cycles, !shares_core);
            let ahead = if pipe.t >= 2.0 { ahead } else { 0.0 };
            let first = self.stages[j].layers == 1;
            (self.walks).pass(j, first, (ahead, load_end), cost, own, passes);
        }
        if let Some(hop) = joining.passes_hop_cycles {
            self.max_hop_cycles = self.max_hop_cycles.max(hop);
            self.fill_cycles += passes;
            self.chain += passes;
            self.queued_chain += passes;
            self.paths_mut().for_each(|at| *at += passes);
        }
        self.layers.push(SegmentLayer {
            stage: j,
            last_step_cycles: own_last,
            hop_cycles: passes,
            stream_cycles: cost.stream_cycles,
        });
    }
}
