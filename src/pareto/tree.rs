//! A static k-d tree over a set of rows that answers "does any of them dominate this row?".
//!
//! Each node keeps the per-objective minimum of its rows: when that corner is worse than the
//! query in some objective, no row below can dominate the query and the subtree is skipped.
//! With large fronts this replaces the linear scan of a window that makes plain SFS quadratic.

use super::front::dominates;

/// Rows per leaf: below this a linear scan beats descending further.
const LEAF_ROWS: usize = 16;

/// A tree of depth d holds at most d + 1 pending nodes during a depth-first query, and the
/// median split keeps d below 64 for any table that fits in memory.
const MAX_STACK: usize = 128;

struct Node {
    start: usize,
    end: usize,
    children: Option<(usize, usize)>,
}

pub(crate) struct DomTree {
    dims: usize,
    /// The rows in leaf order, row-major.
    rows: Vec<f64>,
    nodes: Vec<Node>,
    /// `nodes.len() x dims`: each node's per-objective minimum.
    mins: Vec<f64>,
}

impl DomTree {
    /// A tree over the rows at `positions` of the row-major table `table`.
    pub(crate) fn new(table: &[f64], dims: usize, positions: &[usize]) -> Self {
        let mut order = positions.to_vec();
        let mut tree = DomTree {
            dims,
            rows: Vec::with_capacity(order.len() * dims),
            nodes: Vec::new(),
            mins: Vec::new(),
        };
        if !order.is_empty() {
            tree.build(table, &mut order, 0);
        }
        for &p in &order {
            tree.rows
                .extend_from_slice(&table[p * dims..(p + 1) * dims]);
        }
        tree
    }

    fn build(&mut self, table: &[f64], order: &mut [usize], offset: usize) -> usize {
        let d = self.dims;
        let mut lo = vec![f64::INFINITY; d];
        let mut hi = vec![f64::NEG_INFINITY; d];
        for &p in order.iter() {
            for (j, &v) in table[p * d..(p + 1) * d].iter().enumerate() {
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        let id = self.nodes.len();
        self.mins.extend_from_slice(&lo);
        self.nodes.push(Node {
            start: offset,
            end: offset + order.len(),
            children: None,
        });
        if order.len() > LEAF_ROWS {
            // Split the widest objective at its median; spreads of inf or NaN (from infinite
            // values) only make the choice less apt, never wrong.
            let split = (0..d)
                .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
                .unwrap_or(0);
            let mid = order.len() / 2;
            // Any total order will do: pruning reads the stored minima, not the split.
            order.select_nth_unstable_by(mid, |&a, &b| {
                table[a * d + split].total_cmp(&table[b * d + split])
            });
            let (left, right) = order.split_at_mut(mid);
            let l = self.build(table, left, offset);
            let r = self.build(table, right, offset + mid);
            self.nodes[id].children = Some((l, r));
        }
        id
    }

    /// Whether some row of the tree dominates `p`.
    pub(crate) fn dominates_any(&self, p: &[f64]) -> bool {
        if self.nodes.is_empty() {
            return false;
        }
        let d = self.dims;
        let mut stack = [0usize; MAX_STACK];
        let mut top = 1;
        while top > 0 {
            top -= 1;
            let id = stack[top];
            if self.mins[id * d..(id + 1) * d]
                .iter()
                .zip(p)
                .any(|(m, v)| m > v)
            {
                continue;
            }
            let node = &self.nodes[id];
            match node.children {
                Some((l, r)) if top + 2 <= MAX_STACK => {
                    // The left half holds the smaller values of the split objective: the likelier
                    // dominators, so it is visited first.
                    stack[top] = r;
                    stack[top + 1] = l;
                    top += 2;
                }
                _ => {
                    // A leaf, or (never for real tables) a stack too deep: scan the rows.
                    let rows = &self.rows[node.start * d..node.end * d];
                    if rows.chunks_exact(d).any(|w| dominates(w, p)) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_linear_scan() {
        let mut s = 11u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 7) as f64
        };
        for dims in 1..=5 {
            let table: Vec<f64> = (0..400 * dims).map(|_| next()).collect();
            let positions: Vec<usize> = (0..400).filter(|i| i % 3 != 0).collect();
            let tree = DomTree::new(&table, dims, &positions);
            for q in table.chunks_exact(dims) {
                let expect = positions
                    .iter()
                    .any(|&p| dominates(&table[p * dims..(p + 1) * dims], q));
                assert_eq!(tree.dominates_any(q), expect);
            }
        }
        assert!(!DomTree::new(&[], 3, &[]).dominates_any(&[0.0, 0.0, 0.0]));
    }
}
