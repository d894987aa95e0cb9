//! Property tests of the OFO building blocks against dense algebra and an interior-point QP
//! solver (clarabel): the tree sweeps, the one-hop X⁻¹, the inner projected gradient, and one
//! outer step of the message-passing nested controller.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, SupportedConeT};
use faer::linalg::solvers::DenseSolveCore;
use faer::Mat;
use voltarena_baselines::ofo::nested::{pgd_x_projection, Nested};
use voltarena_baselines::ofo::{Network, OfoController, OfoModel, StepSpec};
use voltarena_env::Task;

fn model() -> (Task, OfoModel) {
    let task = Task::builtin("rural2_96").unwrap();
    let m = OfoModel::from_task(&task).unwrap();
    (task, m)
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// X from the environment's LinDistFlow sensitivities (an independent construction: lowest common
/// ancestors), converted to pu/kVar.
fn dense_x_from_env(task: &Task, m: &OfoModel) -> Mat<f64> {
    let ldf = voltarena_env::LinDistFlow::new(&task.network, voltarena_env::LinDistFlowForm::Linear).unwrap();
    let s = ldf.sensitivities();
    let per_kvar = 1.0 / (task.network.base_mva * 1000.0);
    let n = m.len();
    let pos: Vec<usize> = m.bus.iter().map(|b| s.buses.iter().position(|x| x == b).unwrap()).collect();
    Mat::from_fn(n, n, |i, j| s.x[(pos[i], pos[j])] * per_kvar)
}

#[test]
fn sweeps_and_one_hop_inverse_equal_dense_algebra() {
    let (task, m) = model();
    let x = dense_x_from_env(&task, &m);
    let n = m.len();
    let xinv = x.partial_piv_lu().inverse();
    let mut rng = Lcg(3);
    for _ in 0..10 {
        let d: Vec<f64> = (0..n).map(|_| rng.next()).collect();
        let mut xd = vec![0.0; n];
        m.x_times(&d, &mut xd);
        let mut inv = vec![0.0; n];
        m.x_inv_times(&d, &mut inv);
        for i in 0..n {
            let dense: f64 = (0..n).map(|j| x[(i, j)] * d[j]).sum();
            assert!((xd[i] - dense).abs() <= 1e-15 * x.norm_max() * n as f64, "X·d at {i}");
            let dense_inv: f64 = (0..n).map(|j| xinv[(i, j)] * d[j]).sum();
            assert!((inv[i] - dense_inv).abs() <= 1e-9 * dense_inv.abs().max(1e3), "X⁻¹·d at {i}: {} vs {dense_inv}", inv[i]);
        }
    }
}

#[test]
fn x_spectrum_matches_the_published_figures() {
    // ofo.md §11: λmax = 4.40e-3, λmin = 2.76e-7 pu/kVar, X_95,95 = 2.84e-4 on the shipped file.
    let (task, m) = model();
    let (lo, hi) = m.eig_range();
    assert!((hi / 4.40e-3 - 1.0).abs() < 0.01, "λmax {hi:e}");
    assert!((lo / 2.76e-7 - 1.0).abs() < 0.01, "λmin {lo:e}");
    let deep = m.deepest();
    assert_eq!(task.bus_id[m.bus[deep]], 65, "the deepest bus is SimBench id 65");
    assert!((m.x_path[deep] / 2.84e-4 - 1.0).abs() < 0.01, "X_95,95 {:e}", m.x_path[deep]);
}

/// Solves min_{q∈Q} (q − q̃)ᵀX(q − q̃) with clarabel.
fn qp_projection(x: &Mat<f64>, q_tilde: &[f64], q_max: &[f64]) -> Vec<f64> {
    let n = q_tilde.len();
    // P = 2X (upper triangle), c = −2 X q̃.
    let mut colptr = vec![0usize];
    let (mut rows, mut vals) = (Vec::new(), Vec::new());
    for j in 0..n {
        for i in 0..=j {
            if x[(i, j)] != 0.0 {
                rows.push(i);
                vals.push(2.0 * x[(i, j)]);
            }
        }
        colptr.push(rows.len());
    }
    let p = CscMatrix::new(n, n, colptr, rows, vals);
    let c: Vec<f64> = (0..n).map(|i| -2.0 * (0..n).map(|j| x[(i, j)] * q_tilde[j]).sum::<f64>()).collect();
    // [I; −I] q ≤ [q̄; q̄]
    let mut colptr = vec![0usize];
    let (mut rows, mut vals) = (Vec::new(), Vec::new());
    for j in 0..n {
        rows.extend([j, n + j]);
        vals.extend([1.0, -1.0]);
        colptr.push(rows.len());
    }
    let a = CscMatrix::new(2 * n, n, colptr, rows, vals);
    let b: Vec<f64> = q_max.iter().chain(q_max).copied().collect();
    let cones = [SupportedConeT::NonnegativeConeT(2 * n)];
    let settings = DefaultSettingsBuilder::default().verbose(false).tol_gap_abs(1e-14).tol_gap_rel(1e-14).tol_feas(1e-12).build().unwrap();
    let mut solver = DefaultSolver::new(&p, &c, &a, &b, &cones, settings).unwrap();
    solver.solve();
    solver.solution.x.clone()
}

#[test]
fn inner_projected_gradient_converges_to_the_qp_optimum() {
    let (task, m) = model();
    let x = dense_x_from_env(&task, &m);
    let n = m.len();
    let (_, lmax) = m.eig_range();
    let mut rng = Lcg(9);
    for _ in 0..3 {
        let q_max: Vec<f64> = (0..n).map(|_| 3.0 + 4.0 * (rng.next() + 1.0)).collect();
        let q_tilde: Vec<f64> = (0..n).map(|_| 15.0 * rng.next()).collect(); // many limits active
        let reference = qp_projection(&x, &q_tilde, &q_max);
        let mut q: Vec<f64> = (0..n).map(|i| q_tilde[i].clamp(-q_max[i], q_max[i])).collect();
        let mut work = [Vec::new(), Vec::new()];
        pgd_x_projection(&m, &q_tilde, &q_max, 0.99 / lmax, 200_000, &mut q, &mut work);
        let objective = |q: &[f64]| {
            let d: Vec<f64> = (0..n).map(|i| q[i] - q_tilde[i]).collect();
            (0..n).map(|i| d[i] * (0..n).map(|j| x[(i, j)] * d[j]).sum::<f64>()).sum::<f64>()
        };
        let (fp, fr) = (objective(&q), objective(&reference));
        assert!((fp - fr).abs() <= 1e-9 * fr.abs().max(1e-12), "PGD objective {fp:e} vs clarabel {fr:e}");
        let dq = q.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(dq < 1e-3, "PGD and clarabel differ by {dq} kVar");
        assert!(q.iter().zip(&q_max).any(|(q, m)| (q.abs() - m).abs() < 1e-12), "limits must be active in this test");
    }
}

#[test]
fn message_passing_nested_step_equals_the_closed_form_without_limits() {
    nested_step_closed_form(false);
}

#[test]
fn the_weighted_objective_changes_the_nested_step_as_its_gradient_says() {
    // §IV-H: qᵀXq instead of qᵀCq, i.e. ∇ = (2X + εI) q.
    nested_step_closed_form(true);
}

fn nested_step_closed_form(weighted: bool) {
    // ofo.md §7: with the warm start and no active limits, one outer step is
    // q⁺ = q − β M_K(∇f(q) + X(λ̄ − λ̲)), M_K = 2γ Σ_{j<K} (I − 2γX)^j, ∇f = (2C + εI) q (or (2X + εI) q).
    let (task, m) = model();
    let x = dense_x_from_env(&task, &m);
    let n = m.len();
    let spec = StepSpec { beta_rel: Some(300.0), gamma_rel: Some(0.99), alpha_gain: Some(0.5), k_inner: Some(10), weighted: Some(weighted), ..Default::default() };
    let s = spec.resolve(&m).unwrap();
    let mut ctl = Nested::new(m.clone(), s, Network::new(n, &[], 0.0, 0));
    let mut rng = Lcg(5);
    let v: Vec<f64> = (0..n).map(|_| 1.0 + 0.06 * rng.next()).collect();
    let q0: Vec<f64> = (0..n).map(|_| 2.0 * rng.next()).collect();
    let q_max = vec![1e9; n];
    let mut q = q0.clone();
    ctl.step(&v, &q_max, &mut q);
    // Dense reference: duals after (9a)-(9b) from zero.
    let lam: Vec<f64> = (0..n).map(|i| (s.alpha * (v[i] - m.v_max)).max(0.0) - (s.alpha * (m.v_min - v[i])).max(0.0)).collect();
    let grad_f = |i: usize| if weighted { s.epsilon * q0[i] + (0..n).map(|j| 2.0 * x[(i, j)] * q0[j]).sum::<f64>() } else { (2.0 + s.epsilon) * q0[i] };
    let g: Vec<f64> = (0..n).map(|i| grad_f(i) + (0..n).map(|j| x[(i, j)] * lam[j]).sum::<f64>()).collect();
    let a = Mat::<f64>::identity(n, n) - Mat::from_fn(n, n, |i, j| 2.0 * s.gamma * x[(i, j)]);
    let mut term = g.clone();
    let mut mk_g = vec![0.0; n];
    for _ in 0..s.k_inner {
        for i in 0..n {
            mk_g[i] += 2.0 * s.gamma * term[i];
        }
        term = (0..n).map(|i| (0..n).map(|j| a[(i, j)] * term[j]).sum()).collect();
    }
    for i in 0..n {
        let expect = q0[i] - s.beta * mk_g[i];
        assert!((q[i] - expect).abs() < 1e-9 * (1.0 + expect.abs()), "node {i}: {} vs {expect}", q[i]);
    }
}

#[test]
fn nested_with_limits_equals_the_single_machine_reference_and_faults_behave() {
    let (_, m) = model();
    let n = m.len();
    let spec = StepSpec { beta_rel: Some(300.0), gamma_rel: Some(0.99), alpha_gain: Some(0.5), ..Default::default() };
    let s = spec.resolve(&m).unwrap();
    let mut rng = Lcg(21);
    let v: Vec<f64> = (0..n).map(|_| 1.04 + 0.03 * rng.next()).collect();
    let q_max: Vec<f64> = (0..n).map(|_| 2.0 + (rng.next() + 1.0)).collect();
    let q0: Vec<f64> = (0..n).map(|i| 0.5 * q_max[i] * rng.next()).collect();
    let mut ctl = Nested::new(m.clone(), s, Network::new(n, &[], 0.0, 0));
    let mut q = q0.clone();
    ctl.step(&v, &q_max, &mut q);
    // Reference: dense-free single machine version of the same outer step.
    let mut lam = vec![0.0; n];
    for i in 0..n {
        lam[i] = (s.alpha * (v[i] - m.v_max)).max(0.0) - (s.alpha * (m.v_min - v[i])).max(0.0);
    }
    let scaled: Vec<f64> = q0.iter().map(|q| (2.0 + s.epsilon) * q).collect();
    let mut xinv = vec![0.0; n];
    m.x_inv_times(&scaled, &mut xinv);
    let q_tilde: Vec<f64> = (0..n).map(|i| q0[i] - s.beta * (xinv[i] + lam[i])).collect();
    let mut reference: Vec<f64> = (0..n).map(|i| q0[i].clamp(-q_max[i], q_max[i])).collect();
    let mut work = [Vec::new(), Vec::new()];
    pgd_x_projection(&m, &q_tilde, &q_max, s.gamma, s.k_inner, &mut reference, &mut work);
    for i in 0..n {
        assert!((q[i] - reference[i]).abs() < 1e-9, "node {i}");
    }
    assert!(q.iter().zip(&q_max).any(|(q, m)| (q.abs() - m).abs() < 1e-12), "some limits are active");
    // A failed node keeps its setpoint; lost messages change the result but keep it finite and in Q.
    let failed = m.deepest();
    let mut ctl = Nested::new(m.clone(), s, Network::new(n, &[failed], 0.3, 7));
    let mut qf = q0.clone();
    for _ in 0..5 {
        ctl.step(&v, &q_max, &mut qf);
    }
    assert_eq!(qf[failed], q0[failed]);
    assert!(qf.iter().zip(&q_max).all(|(q, m)| q.is_finite() && q.abs() <= *m));
}
