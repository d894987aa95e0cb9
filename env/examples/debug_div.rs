use std::sync::Arc;
use voltarena_env::*;
use voltarena_env::controller::RandomControl;
fn main() {
    let task = Arc::new(Task::builtin("mapdn322").unwrap());
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let mut c = RandomControl::default();
    let mut a = vec![0.0; env.n_agents()];
    for ep in 0..6u64 {
        env.reset(ep, &ResetOptions { split: Split::Test, ..Default::default() }).unwrap();
        c.reset(&env, ep);
        loop {
            c.act(&env, &mut a);
            let s = env.step(&a).unwrap();
            if s.metrics.diverged {
                let (p, q) = env.injections();
                let (p, q) = (p.to_vec(), q.to_vec());
                let mut out = vec![];
                for alg in [Algorithm::Radial, Algorithm::Newton] {
                    let mut sol = Solution::new(322);
                    let mut sv = AcSolver::new(&task.network, AcOptions { algorithm: alg, max_iterations: 200, ..Default::default() }).unwrap();
                    out.push(format!("{:?}", sv.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).map(|i| (i.iterations, sol.vm_pu.iter().cloned().fold(9.0, f64::min)))));
                }
                let mut sol = Solution::new(322);
                let mut l = LinDistFlow::new(&task.network, LinDistFlowForm::Squared).unwrap();
                let r = l.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol);
                println!("ep {ep} t {}: {:?} | LDF vmin {:?} {:?} | sum p {:.3} q {:.3}", env.t(), out, sol.vm_pu.iter().cloned().fold(9.0, f64::min), r.is_ok(), p.iter().sum::<f64>(), q.iter().sum::<f64>());
                break;
            }
            if s.terminated || s.truncated { break; }
        }
    }
}
