//! Radial tree view of a network, rooted at the slack bus.

use super::Edge;

/// Parent/children structure of a radial network, rooted at the slack.
///
/// `order` is a breadth-first order from the root: iterating it forwards visits every parent
/// before its children (forward sweeps), backwards visits children first (backward sweeps).
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// Root bus (the slack).
    pub root: usize,
    /// Parent of each bus; `usize::MAX` for the root.
    pub parent: Vec<usize>,
    /// Index into [`super::Admittance::edges`] of the edge to the parent; `usize::MAX` for the root.
    pub parent_edge: Vec<usize>,
    /// True when the parent is the edge's `from` end (the edge points away from the slack).
    pub parent_is_from: Vec<bool>,
    /// Breadth-first order from the root (root first).
    pub order: Vec<usize>,
    /// Number of edges between each bus and the root.
    pub depth: Vec<usize>,
    child_ptr: Vec<usize>,
    child_idx: Vec<usize>,
}

impl Tree {
    /// Builds the tree if the edges form a spanning tree over `n` buses; `None` otherwise
    /// (meshed, or not connected).
    pub fn build(n: usize, root: usize, edges: &[Edge]) -> Option<Tree> {
        if n == 0 || root >= n || edges.len() != n - 1 {
            return None;
        }
        let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        for (k, e) in edges.iter().enumerate() {
            adj[e.from].push((e.to, k));
            adj[e.to].push((e.from, k));
        }
        let mut parent = vec![usize::MAX; n];
        let mut parent_edge = vec![usize::MAX; n];
        let mut parent_is_from = vec![false; n];
        let mut depth = vec![0; n];
        let mut seen = vec![false; n];
        let mut order = Vec::with_capacity(n);
        seen[root] = true;
        order.push(root);
        let mut head = 0;
        while head < order.len() {
            let i = order[head];
            head += 1;
            for &(j, k) in &adj[i] {
                if !seen[j] {
                    seen[j] = true;
                    parent[j] = i;
                    parent_edge[j] = k;
                    parent_is_from[j] = edges[k].from == i;
                    depth[j] = depth[i] + 1;
                    order.push(j);
                }
            }
        }
        if order.len() != n {
            return None;
        }
        let mut child_ptr = vec![0usize; n + 1];
        for &p in &parent {
            if p != usize::MAX {
                child_ptr[p + 1] += 1;
            }
        }
        for i in 0..n {
            child_ptr[i + 1] += child_ptr[i];
        }
        let mut fill = child_ptr.clone();
        let mut child_idx = vec![0; n - 1];
        for &j in &order[1..] {
            let p = parent[j];
            child_idx[fill[p]] = j;
            fill[p] += 1;
        }
        Some(Tree { root, parent, parent_edge, parent_is_from, order, depth, child_ptr, child_idx })
    }

    /// Number of buses.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Always false: a tree has its root.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Children of bus `i`.
    pub fn children(&self, i: usize) -> &[usize] {
        &self.child_idx[self.child_ptr[i]..self.child_ptr[i + 1]]
    }

    /// Parent of bus `i`, `None` for the root.
    pub fn parent_of(&self, i: usize) -> Option<usize> {
        (self.parent[i] != usize::MAX).then_some(self.parent[i])
    }

    /// Buses on the path from the root to `i`, both included, root first.
    pub fn path_from_root(&self, i: usize) -> Vec<usize> {
        let mut path = Vec::with_capacity(self.depth[i] + 1);
        let mut k = i;
        path.push(k);
        while let Some(p) = self.parent_of(k) {
            path.push(p);
            k = p;
        }
        path.reverse();
        path
    }

    /// Largest depth (hops from the root).
    pub fn max_depth(&self) -> usize {
        self.depth.iter().copied().max().unwrap_or(0)
    }
}
