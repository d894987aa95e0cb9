//! The metrics of the task: what one step is judged by ([`StepMetrics`]), their running sums over
//! an episode or many ([`MetricsAcc`]), and the aggregate a controller is reported with
//! ([`MetricsSummary`]). `docs/ENVIRONMENT.md` (§ Metrics) defines them; they do not depend on the
//! reward a controller is trained with, so runs on different rewards stay comparable.
//!
//! Voltages are judged on the task's metric buses B (`Task::metric_buses`, the reward's
//! `buses`: by default all non-slack buses in clean mode, all buses in compat mode), against the
//! task's limits [v_min, v_max] (pu). With
//! viol_i = [v_i − v_max]⁺ + [v_min − v_i]⁺ (pu):
//!
//! | metric | per step ([`StepMetrics`]) | aggregate ([`MetricsSummary`]) |
//! |---|---|---|
//! | CR (MAPDN's controllable rate) | `cr`: 1 if every bus of B is within the limits, else 0 (0 on divergence) | `cr`: mean over steps |
//! | QL (MAPDN's reactive power) | `ql_mvar`: mean \|q\| over the inverters (Mvar) | `ql`: mean over steps (Mvar) |
//! | violation | `violation_pu`: Σ_{i∈B} viol_i (pu); `max_violation_pu`: max_i viol_i | `violation_pu_mean`: mean over steps (pu); `violation_rate`: fraction of steps with any violation, diverged steps included |
//! | AVV, average voltage violation | — | per bus: the mean over steps of viol_i (ofo.md eq. 20, [`MetricsAcc::avv`]); `avv_max` and its bus id `avv_max_bus` |
//! | voltage range | `v_min_pu`, `v_max_pu` over B (pu; NaN on divergence) | — |
//! | losses | `loss_mw`: branch active losses (MW) | `loss_kwh`: Σ loss · Δt (kWh) |
//! | reactive energy | — | `q_kvarh`: Σ_t Σ_k \|q_k\| · Δt (kvarh) |
//! | divergence | `diverged`: the power flow failed | `divergences`: count of such steps |
//!
//! Δt is the task's resolution. A diverged step counts in `steps` (and in the CR and QL means) and
//! as a violation step, but adds nothing to the violation, loss and energy sums. Means divide by
//! the step count (1 when there are no steps). The environment fills a step's voltage metrics and
//! the AVV sums from its solved state (`VoltageEnv::voltage_metrics`); the rest is here.

/// Metrics of one step. Voltages are judged on the task's `metric_buses`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepMetrics {
    /// 1 if every bus is within [v_min, v_max], else 0 (MAPDN's CR; 0 on divergence).
    pub cr: f64,
    /// Mean |q| over the inverters (Mvar): MAPDN's QL.
    pub ql_mvar: f64,
    /// Σ_i [v_i − v_max]⁺ + [v_min − v_i]⁺ (pu).
    pub violation_pu: f64,
    /// Largest single-bus violation (pu).
    pub max_violation_pu: f64,
    pub v_min_pu: f64,
    pub v_max_pu: f64,
    /// Branch active losses (MW).
    pub loss_mw: f64,
    pub diverged: bool,
    /// PV active power fed in, and curtailed below what the panels offered (MW, all inverters).
    pub pv_mw: f64,
    pub curtailed_mw: f64,
}

/// Running sums of step metrics (per episode, or merged over many).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsAcc {
    pub steps: usize,
    pub cr_sum: f64,
    pub ql_sum: f64,
    pub violation_steps: usize,
    pub violation_pu_sum: f64,
    pub loss_kwh: f64,
    pub q_kvarh: f64,
    pub divergences: usize,
    /// Σ_t ([v_i − v_max]⁺ + [v_min − v_i]⁺) per bus (all buses, bus order).
    pub avv_sum: Vec<f64>,
    /// PV energy fed in and curtailed (kWh).
    pub pv_kwh: f64,
    pub curtailed_kwh: f64,
}

/// Aggregate metrics (`docs/ENVIRONMENT.md` defines each).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSummary {
    pub steps: usize,
    pub cr: f64,
    pub ql: f64,
    pub avv_max: f64,
    /// Bus id with the largest AVV.
    pub avv_max_bus: i64,
    pub violation_rate: f64,
    pub violation_pu_mean: f64,
    pub loss_kwh: f64,
    pub q_kvarh: f64,
    pub divergences: usize,
    /// PV energy curtailed by the controller (kWh; absent, i.e. 0, where nothing was).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub curtailed_kwh: f64,
}

/// For `skip_serializing_if`: a quantity or weight that is 0 stays out of the output (and out of
/// resolved configs, so earlier hashes stay valid).
pub(crate) fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl MetricsAcc {
    pub fn new(n_bus: usize) -> MetricsAcc {
        MetricsAcc { avv_sum: vec![0.0; n_bus], ..Default::default() }
    }

    pub fn clear(&mut self) {
        let n = self.avv_sum.len();
        *self = MetricsAcc::new(n);
    }

    /// Adds one step of `n_inverters` inverters, `dt_h` hours long (the AVV sums are added by the
    /// environment, which knows the bus voltages).
    pub(crate) fn add_step(&mut self, m: &StepMetrics, dt_h: f64, n_inverters: usize) {
        self.steps += 1;
        self.cr_sum += m.cr;
        self.ql_sum += m.ql_mvar;
        if m.diverged {
            self.divergences += 1;
            self.violation_steps += 1;
            return;
        }
        if m.cr < 1.0 {
            self.violation_steps += 1;
        }
        self.violation_pu_sum += m.violation_pu;
        self.loss_kwh += m.loss_mw * 1000.0 * dt_h;
        self.q_kvarh += m.ql_mvar * n_inverters as f64 * 1000.0 * dt_h;
        self.pv_kwh += m.pv_mw * 1000.0 * dt_h;
        self.curtailed_kwh += m.curtailed_mw * 1000.0 * dt_h;
    }

    /// Share of the PV energy on offer that was curtailed (%).
    pub fn curtailed_pct(&self) -> f64 {
        let offered = self.pv_kwh + self.curtailed_kwh;
        if offered > 0.0 {
            100.0 * self.curtailed_kwh / offered
        } else {
            0.0
        }
    }

    /// Adds another accumulator (same network).
    pub fn merge(&mut self, o: &MetricsAcc) {
        self.steps += o.steps;
        self.cr_sum += o.cr_sum;
        self.ql_sum += o.ql_sum;
        self.violation_steps += o.violation_steps;
        self.violation_pu_sum += o.violation_pu_sum;
        self.loss_kwh += o.loss_kwh;
        self.q_kvarh += o.q_kvarh;
        self.pv_kwh += o.pv_kwh;
        self.curtailed_kwh += o.curtailed_kwh;
        self.divergences += o.divergences;
        if self.avv_sum.len() < o.avv_sum.len() {
            self.avv_sum.resize(o.avv_sum.len(), 0.0);
        }
        for (a, b) in self.avv_sum.iter_mut().zip(&o.avv_sum) {
            *a += b;
        }
    }

    /// Average voltage violation of each bus (pu), ofo.md eq. (20).
    pub fn avv(&self, bus: usize) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.avv_sum[bus] / self.steps as f64
        }
    }

    pub fn summary(&self, bus_id: &[i64]) -> MetricsSummary {
        let s = self.steps.max(1) as f64;
        let (mut best, mut arg) = (0.0, 0usize);
        for (i, &a) in self.avv_sum.iter().enumerate() {
            if a > best {
                best = a;
                arg = i;
            }
        }
        MetricsSummary {
            steps: self.steps,
            cr: self.cr_sum / s,
            ql: self.ql_sum / s,
            avv_max: best / s,
            avv_max_bus: bus_id.get(arg).copied().unwrap_or(-1),
            violation_rate: self.violation_steps as f64 / s,
            violation_pu_mean: self.violation_pu_sum / s,
            loss_kwh: self.loss_kwh,
            q_kvarh: self.q_kvarh,
            divergences: self.divergences,
            curtailed_kwh: self.curtailed_kwh,
        }
    }
}
