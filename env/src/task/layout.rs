//! Where every feature sits in an agent's observation and in the global state. This is the one
//! definition: [`Task::obs_dim`](super::Task::obs_dim) and [`Task::state_dim`](super::Task::state_dim)
//! come from it, and the environment writes both vectors through its offsets. What the values are
//! (units, normalisation, which data row) is the environment's business (docs/ENVIRONMENT.md).

use super::schema::Mode;

/// The observation and state layout of a task, for its mode (clean / compat) and options
/// (angles). A few integers: [`Task::layout`](super::Task::layout) computes it on demand.
///
/// **Observation** of agent k in zone Z (Z's buses sorted by id), `obs_dim` = 4·max|Z| + 2
/// (3·max|Z| + 2 without angles):
///
/// ```text
/// [ P_Z | Q_Z | p_k, q_k | V_Z | θ_Z ]      block width w; offsets 0, w, 2w, 2w+1, 2w+2, 3w+2
/// ```
///
/// - P_Z, Q_Z: load at the zone's buses; p_k, q_k: the agent's own PV; V_Z: |V| of the zone's
///   buses; θ_Z: their voltage angles (only with `observation.angles`);
/// - clean: w = max|Z|, every block padded to the largest zone, so that a feature keeps its
///   position across agents;
/// - compat (MAPDN): w = |Z|, the blocks concatenated, zero-padded at the end.
///
/// The j-th bus of Z sits at `offset + j` in each bus block; unused entries are zero.
///
/// **State** (`state_dim` = 4N + 2·n_pv, the same in both modes):
///
/// ```text
/// [ P (N) | Q (N) | p (n_pv) | q (n_pv) | |V| (N) | θ (N) ]
/// ```
///
/// - P, Q: net consumption of every bus (bus order); p, q: every PV (agent order); |V|, θ: every
///   bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObsLayout {
    /// Clean: zone blocks padded to `max_zone`; compat: concatenated with the actual |Z|.
    pub mode: Mode,
    /// Whether observations hold the zone's voltage angles.
    pub angles: bool,
    /// Largest zone size, max|Z| (buses).
    pub max_zone: usize,
    /// Buses, N.
    pub n_bus: usize,
    /// PV inverters (agents), n_pv.
    pub n_pv: usize,
}

/// Offsets of one zone's blocks in an agent's observation (see [`ObsLayout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneBlocks {
    /// Width w of each bus block: max|Z| (clean) or |Z| (compat).
    pub width: usize,
    /// Load P of the zone's buses.
    pub p: usize,
    /// Load Q of the zone's buses.
    pub q: usize,
    /// The agent's own PV active power p.
    pub own_p: usize,
    /// The agent's own reactive power q.
    pub own_q: usize,
    /// |V| of the zone's buses.
    pub v: usize,
    /// Voltage angles of the zone's buses; `None` without angles.
    pub theta: Option<usize>,
}

/// Offsets of the blocks of the global state (see [`ObsLayout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBlocks {
    /// Net consumption P of every bus (N entries).
    pub p: usize,
    /// Net consumption Q of every bus (N).
    pub q: usize,
    /// Active power of every PV (n_pv).
    pub pv_p: usize,
    /// Reactive power of every PV (n_pv).
    pub pv_q: usize,
    /// |V| of every bus (N).
    pub v: usize,
    /// Voltage angle of every bus (N).
    pub theta: usize,
}

impl ObsLayout {
    pub fn new(mode: Mode, angles: bool, max_zone: usize, n_bus: usize, n_pv: usize) -> ObsLayout {
        ObsLayout { mode, angles, max_zone, n_bus, n_pv }
    }

    /// Bus blocks per observation: P, Q, V, and θ with angles.
    fn bus_blocks(&self) -> usize {
        if self.angles {
            4
        } else {
            3
        }
    }

    /// Length of one agent's observation: 4·max|Z| + 2 with angles, 3·max|Z| + 2 without.
    pub fn obs_dim(&self) -> usize {
        self.bus_blocks() * self.max_zone + 2
    }

    /// Length of the global state: 4·N + 2·n_pv.
    pub fn state_dim(&self) -> usize {
        4 * self.n_bus + 2 * self.n_pv
    }

    /// The block offsets in the observation of an agent whose zone has `zone_len` buses
    /// (≤ `max_zone`).
    pub fn zone(&self, zone_len: usize) -> ZoneBlocks {
        debug_assert!(zone_len <= self.max_zone, "zone of {zone_len} buses, largest is {}", self.max_zone);
        let w = if self.mode == Mode::Compat { zone_len } else { self.max_zone };
        ZoneBlocks { width: w, p: 0, q: w, own_p: 2 * w, own_q: 2 * w + 1, v: 2 * w + 2, theta: self.angles.then_some(3 * w + 2) }
    }

    /// The block offsets of the global state.
    pub fn state(&self) -> StateBlocks {
        let (n, np) = (self.n_bus, self.n_pv);
        StateBlocks { p: 0, q: n, pv_p: 2 * n, pv_q: 2 * n + np, v: 2 * n + 2 * np, theta: 3 * n + 2 * np }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks `len` entries from `at`, failing on overlap or overflow.
    fn mark(used: &mut [bool], at: usize, len: usize) {
        for u in &mut used[at..at + len] {
            assert!(!*u, "overlap at {at}");
            *u = true;
        }
    }

    #[test]
    fn zone_blocks_fit_without_overlap_and_clean_ones_do_not_move() {
        for mode in [Mode::Clean, Mode::Compat] {
            for angles in [true, false] {
                let l = ObsLayout::new(mode, angles, 7, 33, 6);
                for zl in 1..=7 {
                    let b = l.zone(zl);
                    let mut used = vec![false; l.obs_dim()];
                    for at in [Some(b.p), Some(b.q), Some(b.v), b.theta].into_iter().flatten() {
                        mark(&mut used, at, zl);
                    }
                    mark(&mut used, b.own_p, 1);
                    mark(&mut used, b.own_q, 1);
                    assert_eq!(used.iter().filter(|&&u| u).count(), l.bus_blocks() * zl + 2);
                    if mode == Mode::Clean {
                        assert_eq!(b, l.zone(7));
                    } else {
                        // Compat: everything used comes first, the padding last.
                        assert!(used.iter().take_while(|&&u| u).count() == l.bus_blocks() * zl + 2);
                    }
                    assert_eq!(b.theta.is_some(), angles);
                }
                assert_eq!(l.obs_dim(), if angles { 30 } else { 23 });
            }
        }
    }

    #[test]
    fn state_blocks_tile_the_state() {
        let l = ObsLayout::new(Mode::Clean, true, 7, 33, 6);
        let s = l.state();
        let mut used = vec![false; l.state_dim()];
        for (at, len) in [(s.p, 33), (s.q, 33), (s.pv_p, 6), (s.pv_q, 6), (s.v, 33), (s.theta, 33)] {
            mark(&mut used, at, len);
        }
        assert!(used.iter().all(|&u| u));
        assert_eq!(l.state_dim(), 144);
    }
}
