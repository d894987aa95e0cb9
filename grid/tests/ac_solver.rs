//! AC solver behaviour beyond the pandapower comparison: PV buses (MATPOWER semantics) and
//! warm starts.

use std::path::PathBuf;
use voltarena_grid::network::BusKind;
use voltarena_grid::{AcOptions, AcSolver, Algorithm, Injection, Network, PowerFlowError, Solution};

fn case33() -> Network {
    Network::from_matpower_file(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/networks/case33bw.m")).unwrap()
}

#[test]
fn a_pv_bus_holding_the_pq_solution_voltage_reproduces_the_pq_solution() {
    let net = case33();
    let (p, q) = net.injections();
    let mut sol = Solution::new(33);
    AcSolver::new(&net, AcOptions::default()).unwrap().solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
    // Bus 18 (index 17) becomes a PV bus regulating to the voltage it had: the reactive power it
    // must produce is then exactly its PQ injection, so every voltage must come out the same.
    let mut pv = net.clone();
    pv.buses[17].kind = BusKind::Pv;
    pv.buses[17].vm_pu = sol.vm_pu[17];
    let radial = AcSolver::new(&pv, AcOptions { algorithm: Algorithm::Radial, ..Default::default() });
    assert!(matches!(radial, Err(PowerFlowError::Unsupported(_))));
    let mut s = AcSolver::new(&pv, AcOptions::default()).unwrap();
    assert_eq!(s.algorithm(), Algorithm::Newton);
    // The PV bus's q entry is ignored: give it nonsense.
    let mut q2 = q.clone();
    q2[17] = 123.0;
    let mut sol_pv = Solution::new(33);
    s.solve(Injection { p_mw: &p, q_mvar: &q2 }, &mut sol_pv).unwrap();
    for i in 0..33 {
        assert!((sol_pv.vm_pu[i] - sol.vm_pu[i]).abs() < 1e-9, "bus {i}");
        assert!((sol_pv.va_rad[i] - sol.va_rad[i]).abs() < 1e-9, "bus {i}");
    }
    // Raising the setpoint raises the voltage there and at its neighbours.
    s = AcSolver::new(&Network { buses: { let mut b = pv.buses.clone(); b[17].vm_pu = 0.95; b }, ..pv.clone() }, AcOptions::default()).unwrap();
    s.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol_pv).unwrap();
    assert!((sol_pv.vm_pu[17] - 0.95).abs() < 1e-12);
    assert!(sol_pv.vm_pu[16] > sol.vm_pu[16] + 0.01);
}

#[test]
fn warm_start_takes_fewer_iterations_and_lands_on_the_same_solution() {
    let net = case33();
    let (p, q) = net.injections();
    let p2: Vec<f64> = p.iter().map(|v| v * 1.02).collect();
    for algorithm in [Algorithm::Radial, Algorithm::Newton] {
        let mut cold = AcSolver::new(&net, AcOptions { algorithm, ..Default::default() }).unwrap();
        let mut warm = AcSolver::new(&net, AcOptions { algorithm, warm_start: true, ..Default::default() }).unwrap();
        let (mut a, mut b) = (Solution::new(33), Solution::new(33));
        cold.solve(Injection { p_mw: &p, q_mvar: &q }, &mut a).unwrap();
        warm.solve(Injection { p_mw: &p, q_mvar: &q }, &mut b).unwrap();
        let ic = cold.solve(Injection { p_mw: &p2, q_mvar: &q }, &mut a).unwrap().iterations;
        let iw = warm.solve(Injection { p_mw: &p2, q_mvar: &q }, &mut b).unwrap().iterations;
        assert!(iw < ic, "{algorithm:?}: warm {iw} vs cold {ic}");
        for i in 0..33 {
            assert!((a.vm_pu[i] - b.vm_pu[i]).abs() < 1e-10);
        }
    }
}
