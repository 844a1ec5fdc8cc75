//! The end of a segment, once its last layer has joined: T-1 steady rounds after the fill at
//! the pace of the slowest stage or hop, and the drain, what the last rounds save (docs/MODEL.md
//! section 4). In the last round of a core that shares its units between layers, its last layer
//! runs alone (the layers before it have finished), at its own step, and the pipeline then
//! runs at the pace of the stages after it. The segment ends at the longest of the paths
//! through it: each stage's rounds after the chain of the path that walks it, the paths that
//! cross from a core into the next shared one late, the path through a load queued behind its
//! core's streams, with dynamic precision the paths that walk a stage at the steps that suit
//! them, and a shared core's streams back to back on its DRAM share. Each path is monotone in
//! the resources, so their maximum is.

use super::{Pipeline, Segment, Stage};
use crate::accel::crossing::{slow_rounds, stage_crossing, StageLevels};
use crate::accel::shared;

/// The segment's stages as its steady rounds see them: their periods and their last rounds.
struct SegmentRounds<'a> {
    pipe: &'a Pipeline<'a>,
    stages: &'a [Stage],
    /// The slowest period of a stage or of a hop: the pace of the steady rounds.
    slowest: f64,
    /// Per stage, the least its last round takes: its last layer's own step, and the stages
    /// after it (a later core that shares its units: its last round, its last layer alone,
    /// job by job, rather than its full period; docs/MODEL.md section 4, "Two shared cores in
    /// a row").
    floors: Vec<f64>,
    /// Per stage, the least a round of the lone layers after it and of the hops takes: a path
    /// may leave a shared core's wavefront at any step and walk the stages after it from there
    /// (docs/MODEL.md section 4, "A shared core's last rounds, crossed").
    crossed: Vec<f64>,
}

impl<'a> SegmentRounds<'a> {
    fn of(pipe: &'a Pipeline<'a>, stages: &'a [Stage], max_hop: f64) -> Self {
        let (t, rho, seq_len) = (pipe.t, pipe.rho, pipe.seq_len());
        let slowest = stages.iter().map(Stage::period).fold(max_hop, f64::max);
        let mut floors = vec![0.0f64; stages.len()];
        let mut crossed = vec![0.0f64; stages.len()];
        let mut after = max_hop;
        let mut lone_after = max_hop;
        for (k, stage) in stages.iter().enumerate().rev() {
            floors[k] = stage.last_step_cycles.max(after);
            crossed[k] = lone_after;
            if stage.layers == 1 {
                // Its compute-bound rounds: its streams run ahead of its steps (the double
                // buffer), so they need not pace a path that enters it late.
                lone_after = lone_after.max(stage.compute_step_cycles.max(stage.busy_cycles));
            }
            let own = if stage.layers >= 2 && t >= 2.0 {
                let last =
                    shared::last_rounds(&stage.jobs, stage.busy_cycles, floors[k], rho, seq_len);
                last.last().copied().unwrap_or(0.0).max(stage.stream_cycles)
            } else {
                stage.period()
            };
            after = after.max(own);
        }
        SegmentRounds {
            pipe,
            stages,
            slowest,
            floors,
            crossed,
        }
    }

    /// Whether stage j holds two or more layers and the run has rounds after step 0.
    fn shared(&self, j: usize) -> bool {
        self.pipe.t >= 2.0 && self.stages[j].layers >= 2
    }

    /// T-1 rounds of stage j at `pace`, less its drain: its last round takes its last layer's
    /// own step and the stages after it, not the layers that have finished.
    fn steady(&self, j: usize, pace: f64) -> f64 {
        let stage = &self.stages[j];
        let mut drain = 0.0;
        if self.shared(j) {
            drain = (pace - self.floors[j])
                .max(0.0)
                .min(stage.busy_cycles - stage.last_busy_cycles);
        }
        (self.pipe.t - 1.0) * pace - drain
    }

    /// The rounds at the units' pace, job by job where they are not steady: a layer's last
    /// job and the rounds after it (docs/MODEL.md section 4, "A shared core's last jobs").
    /// Those rounds shrink as the core's layers finish; where they fall below the rounds of
    /// the lone layers after the core, the longest path leaves the core at the step r where
    /// they do: its rounds up to r, then T-1-r rounds of the stages after it. At fixed
    /// precision only: with dynamic precision the walks' crossing gain out of the walked
    /// stage takes such a path (docs/MODEL.md section 4, "A shared core's last rounds,
    /// crossed").
    fn units(&self, j: usize) -> f64 {
        let stage = &self.stages[j];
        if self.shared(j) {
            let (rho, seq_len) = (self.pipe.rho, self.pipe.seq_len());
            let (jobs, busy, floor) = (&stage.jobs, stage.busy_cycles, self.floors[j]);
            let all = shared::units_rounds(jobs, busy, floor, rho, seq_len);
            if self.pipe.dynamic {
                return all;
            }
            // Its own rounds (when its last layer's h comes), each at least that layer's own
            // step: `floor` holds the stages after it too, the path that leaves it in its
            // last round.
            let own = stage.last_step_cycles;
            let rounds = shared::Rounds::of(jobs, busy, own, 0.0, rho, seq_len);
            // The steady rounds are alike: between r = 1 and the last ones the path is a
            // straight line in r, longest at an end.
            let last = seq_len - 1;
            let steps = [0, 1].into_iter().chain(rounds.steady.max(1)..last);
            (steps.filter(|&r| r < last))
                .map(|r| rounds.until(r) + (last - r) as f64 * self.crossed[j])
                .fold(all, f64::max)
        } else {
            self.steady(j, stage.busy_cycles)
        }
    }

    /// Stage j's rounds after step 0, at whichever of its resources is slowest. A lone layer's
    /// streams run T-1 after its step 0; a shared core's streams have their own path.
    fn stage(&self, j: usize) -> f64 {
        let stage = &self.stages[j];
        let stream = (self.pipe.t - 1.0) * stage.stream_cycles;
        let stream = if stage.layers >= 2 { 0.0 } else { stream };
        (stream.max(self.steady(j, stage.step_cycles))).max(self.units(j))
    }

    /// The rounds at the units' or the layers' compute-bound pace (after a queued load).
    fn compute(&self, j: usize) -> f64 {
        (self.steady(j, self.stages[j].compute_step_cycles)).max(self.units(j))
    }

    /// A shared core's negative edges, as far as its streams or its layers' own
    /// (stream-paced) steps, not its units, set its rounds.
    fn edge_credit(&self, j: usize) -> f64 {
        let stage = &self.stages[j];
        let over = stage.stream_cycles.max(stage.step_cycles) - stage.busy_cycles;
        (stage.edge_credit_cycles).max(-(self.pipe.t - 1.0) * over.max(0.0))
    }
}

impl Segment {
    /// A shared core's round, job by job: the reconfigurations its alternating plans save,
    /// and its wait for an h made in it (docs/MODEL.md section 4, "A shared core's
    /// reconfigurations" and "A shared core's last jobs").
    pub(super) fn settle(&mut self, pipe: &Pipeline) {
        for stage in self.stages.iter_mut().filter(|s| s.layers >= 2) {
            let core = &stage.jobs;
            let carried = shared::carried(core, pipe.rho);
            let wait = shared::steady_wait(core, pipe.rho);
            stage.busy_cycles += wait - carried;
            stage.carried_cycles = carried;
            for busy in &mut stage.level_busy[..pipe.level_count] {
                *busy += wait - carried;
            }
        }
    }

    /// When the segment ends (absolute cycles), after `settle`: its last layer is on stage
    /// `last_stage`, and its cores were free from `core_free` on.
    pub(super) fn end(&self, pipe: &Pipeline, last_stage: usize, core_free: &[f64]) -> f64 {
        let (t, stages) = (pipe.t, &self.stages[..]);
        let max_hop = self.max_hop_cycles;
        let rounds = SegmentRounds::of(pipe, stages, max_hop);
        let slowest = rounds.slowest;
        // The credit is the layer's first stream, fetched while it waited: its stream chain
        // then runs from its first product, fg + (T-2) str + last instead of e + (T-1)
        // str. When a slower stage paces the segment, the layer's streams are fetched
        // ahead anyway and the path through it is its first step + (T-1) P, which the
        // credit would shorten by a stream it never waited for.
        let unpaced: f64 = (stages.iter())
            .filter(|s| s.period() < slowest)
            .map(|s| s.stream_credit_cycles)
            .sum();
        // A shared core's negative edges count on a pacing core (with dynamic precision, on
        // the stage the path walks).
        let edges = (0..stages.len())
            .filter(|&j| stages[j].period() >= slowest)
            .map(|j| rounds.edge_credit(j))
            .fold(0.0f64, f64::min);
        let mut end = if pipe.dynamic && t >= 2.0 {
            self.walked_dynamic(pipe, &rounds, last_stage, (unpaced, edges))
        } else {
            self.walked(pipe, &rounds) + unpaced + edges
        };
        // The path through a load queued behind its core's earlier streams: from there the
        // rounds at the units' or the layers' compute-bound pace (the streams' own path,
        // loads and streams back to back, is the shared core's stream path below).
        let queued_end = if self.queued {
            let compute = (0..stages.len())
                .map(|j| rounds.compute(j))
                .fold((t - 1.0) * max_hop, f64::max);
            self.queued_chain + unpaced + compute
        } else {
            0.0
        };
        end = end.max(queued_end);
        if t >= 2.0 {
            for (j, stage) in stages.iter().enumerate() {
                if stage.layers >= 2 && stage.stream_cycles > 0.0 {
                    end = end.max(self.streamed(pipe, j, core_free[j]));
                }
            }
        }
        end
    }

    /// At fixed precision, the longest path that walks a stage: each stage's rounds after the
    /// chain of the path that walks it, and the paths that walk the core before a shared one
    /// for r more steps and cross into it there (the core's rounds after its step r, at its
    /// units' pace).
    fn walked(&self, pipe: &Pipeline, rounds: &SegmentRounds) -> f64 {
        let (t, rho, seq_len) = (pipe.t, pipe.rho, pipe.seq_len());
        let mut walked = (0..self.stages.len())
            .map(|j| self.chain_at[j] + rounds.stage(j))
            .fold(self.chain + (t - 1.0) * self.max_hop_cycles, f64::max);
        for (k, stage) in self.stages.iter().enumerate() {
            if stage.layers >= 2 && stage.stream_cycles <= 0.0 {
                let busy = stage.busy_cycles;
                let after =
                    shared::Rounds::of(&stage.jobs, busy, rounds.floors[k], 0.0, rho, seq_len);
                for crossing in &stage.crossings {
                    walked = walked.max(crossing.chain_cycles + after.after(crossing.step));
                }
            }
        }
        walked
    }

    /// Dynamic precision: the longest path walks one stage for all T steps and passes the
    /// others once, those before it at step 0 and those after it at step T-1, each at that
    /// step's levels, and it crosses into and out of the walked stage at the steps that suit
    /// it (slow ones). Every stage may be the one walked: the longest of these paths (at fixed
    /// precision, the rounds of the slowest stage). `unpaced`: the stream credits of the
    /// stages that do not pace the segment, `edges`: the pacing cores' negative edges.
    fn walked_dynamic(
        &self,
        pipe: &Pipeline,
        rounds: &SegmentRounds,
        last_stage: usize,
        (unpaced, edges): (f64, f64),
    ) -> f64 {
        let (t, stages) = (pipe.t, &self.stages);
        let column = |f: fn(&Stage) -> super::PerLevel| stages.iter().map(f).collect::<Vec<_>>();
        let (step, busy, first) = (
            column(|s| s.level_step),
            column(|s| s.level_busy),
            column(|s| s.level_first),
        );
        let (last, compute, slack) = (
            column(|s| s.level_last),
            column(|s| s.level_compute),
            column(|s| s.level_slack),
        );
        let stream: Vec<f64> = stages.iter().map(|s| s.stream_cycles).collect();
        let layers: Vec<_> = stages.iter().map(|s| s.layer_level_busy.clone()).collect();
        let levels = StageLevels {
            step: &step,
            busy: &busy,
            first: &first,
            last: &last,
            compute: &compute,
            stream: &stream,
            slack: &slack,
            layers: &layers,
        };
        let span = (pipe.stage_of(self.start), last_stage);
        let max_hop = self.max_hop_cycles;
        let mut end = self.chain + unpaced + (t - 1.0) * max_hop + edges;
        for (p, stage) in stages.iter().enumerate().filter(|(_, s)| s.layers > 0) {
            let period = stage.period();
            let (mut up, mut down) = (0.0, 0.0);
            if period > max_hop {
                let waits = self.walks.waits(p);
                let precision = &pipe.workload.precision;
                (up, down) = stage_crossing(&levels, waits, p, period, span, precision, t);
            }
            let path = self.walks.path(p, up, period < rounds.slowest) + down + rounds.stage(p);
            end = end.max(path + rounds.edge_credit(p));
        }
        end
    }

    /// A core whose layers share its DRAM share: its loads and then the streams of all its
    /// layers' steps 1.. run back to back on it (each stream double-buffered ahead of its
    /// step), then the last step of a layer that streams (after its own last stream), the last
    /// steps of the layers after it and the hops between them. (With one step nothing
    /// streams: step 0 runs on the loads, which the chain has.)
    fn streamed(&self, pipe: &Pipeline, j: usize, core_free: f64) -> f64 {
        let t = pipe.t;
        let stage = &self.stages[j];
        // Stream 2 of the core's first layer waits for its step 0's products, which wait for
        // its input: the rest of the DRAM work follows them.
        let first = &stage.first;
        let rest = stage.load_cycles - first.load_cycles + (t - 1.0) * stage.stream_cycles
            - first.stream_cycles;
        let mut streams = (core_free + stage.load_cycles + (t - 1.0) * stage.stream_cycles)
            .max(first.input_at.max(core_free + first.load_cycles) + first.busy_cycles + rest);
        // With dynamic precision, the rounds whose units (at the levels of the steps the
        // core's layers work on) outlast its streams delay them by the difference.
        if pipe.dynamic {
            let precision = &pipe.workload.precision;
            let (busy, carried) = (&stage.layer_level_busy, stage.carried_cycles);
            streams += slow_rounds(busy, carried, stage.stream_cycles, precision, t);
        }
        // The last round's streams come in wavefront order: each streaming layer's last step
        // follows its own last stream, the last steps after it follow.
        let mut end = f64::NEG_INFINITY;
        let mut later = 0.0;
        for m in (0..self.layers.len()).rev() {
            let layer = &self.layers[m];
            if layer.stage != j || layer.stream_cycles <= 0.0 {
                continue;
            }
            let after: f64 = (self.layers[m..].iter())
                .map(|l| l.last_step_cycles + l.hop_cycles)
                .sum();
            end = end.max(streams - later + after);
            later += layer.stream_cycles;
        }
        end
    }
}
