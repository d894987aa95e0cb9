//! The environment: MAPDN shapes, reward by hand, physics equal to the engine, determinism,
//! vectorised = sequential, episode semantics per mode, divergence, faults, bad task files.

use std::sync::Arc;
use voltarena_env::controller::RandomControl;
use voltarena_env::powerflow::{solve_batch, Method};
use voltarena_env::reward::Barrier;
use voltarena_env::task::{Backend, Mode};
use voltarena_env::vector::VecEnv;
use voltarena_env::{AcOptions, Controller, ResetOptions, Split, Task, VoltageEnv};

fn task(name: &str) -> Arc<Task> {
    Arc::new(Task::builtin(name).unwrap())
}

fn with_mode(name: &str, mode: Mode) -> Arc<Task> {
    let t = Task::builtin(name).unwrap();
    let mut spec = t.spec.clone();
    spec.mode = mode;
    Arc::new(Task::build(spec, "test", None).unwrap())
}

fn test_opts() -> ResetOptions {
    ResetOptions { split: Split::Test, ..Default::default() }
}

#[test]
fn shapes_equal_mapdn_in_both_modes() {
    // (agents, zones, obs dim 4·max|Z|+2, state dim 4N + 2 n_pv) from MAPDN's code (mapdn.md §1).
    for (name, agents, zones, obs, state) in [("mapdn33", 6, 4, 50, 144), ("mapdn141", 22, 9, 98, 608), ("mapdn322", 38, 22, 158, 1364)] {
        for mode in [Mode::Clean, Mode::Compat] {
            let t = with_mode(name, mode);
            assert_eq!((t.n_agents(), t.zones.len(), t.obs_dim(), t.state_dim()), (agents, zones, obs, state), "{name} {mode:?}");
            let mut env = VoltageEnv::new(t.clone()).unwrap();
            env.reset(1, &test_opts()).unwrap();
            assert_eq!(env.observations().len(), agents * obs);
            assert_eq!(env.state().len(), state);
        }
    }
    // MAPDN's PV buses (pandapower ids) per zone.
    let t = task("mapdn33");
    let pv_buses: Vec<Vec<i64>> = t.zones.iter().map(|z| z.agents.iter().map(|&k| t.bus_id[t.pvs[k].bus]).collect()).collect();
    assert_eq!(pv_buses, vec![vec![12, 17], vec![21], vec![24], vec![28, 32]]);
    let t = task("rural2_96");
    assert_eq!((t.n_agents(), t.network.n_bus()), (95, 96));
    assert!(t.pvs.iter().all(|p| p.s_mva >= 1.2 * 0.003 - 1e-12 && p.s_mva <= 1.2 * 0.010 + 1e-12));
}

#[test]
fn barriers_match_mapdns_reference_values() {
    // mapdn.md §5 table (rounded as printed there).
    let v = [0.90, 0.95, 0.97, 1.00, 1.03, 1.05, 1.06, 1.10];
    let table: [(Barrier, [f64; 8], f64); 5] = [
        (Barrier::L1, [0.100, 0.050, 0.030, 0.0, 0.030, 0.050, 0.060, 0.100], 5e-4),
        (Barrier::L2, [0.0200, 0.0050, 0.0018, 0.0, 0.0018, 0.0050, 0.0072, 0.0200], 5e-5),
        (Barrier::Bowl, [0.1050, 0.0050, 0.00186, 0.00011, 0.00186, 0.0050, 0.0250, 0.1050], 3e-4),
        (Barrier::Bump, [0.0546, 0.0046, 0.00016, 0.0, 0.00016, 0.0046, 0.0105, 0.0546], 5e-5),
        (Barrier::CourantBeltrami, [0.0025, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0001, 0.0025], 5e-5),
    ];
    for (b, expect, tol) in table {
        for (x, e) in v.iter().zip(expect) {
            let got = b.value(*x, 0.95, 1.05);
            assert!((got - e).abs() <= tol, "{b:?}({x}) = {got}, table says {e}");
        }
    }
}

#[test]
fn dead_band_barrier_by_hand() {
    for (v, e) in [(0.90, 0.08 + 0.5), (0.95, 0.03), (0.97, 0.01), (0.99, 0.0), (1.0, 0.0), (1.02, 0.0), (1.03, 0.01), (1.05, 0.03), (1.06, 0.04 + 0.1)] {
        let got = Barrier::DeadBand.value(v, 0.95, 1.05);
        assert!((got - e).abs() < 1e-12, "dead_band({v}) = {got}, expected {e}");
    }
}

#[test]
fn reward_equals_a_hand_computation() {
    let t = task("mapdn33");
    let mut env = VoltageEnv::new(t.clone()).unwrap();
    env.reset(3, &test_opts()).unwrap();
    let actions = [0.5, -0.25, 1.0, -1.0, 0.0, 0.75];
    let s = env.step(&actions).unwrap();
    // q_k = a_k · 0.8 · √(S² − p²); reward = −(mean_{i≠slack} |v_i − 1| + 0.1 · mean |q_k|).
    let mut qsum = 0.0;
    for (k, a) in actions.iter().enumerate() {
        let pv = &t.pvs[k];
        let p = env.pv_p_mw()[k];
        let q = a * 0.8 * (pv.s_mva * pv.s_mva - p * p).sqrt();
        assert!((env.q_mvar()[k] - q).abs() < 1e-12, "agent {k}: q");
        qsum += q.abs();
    }
    let vm = env.vm_pu();
    let vterm: f64 = (1..33).map(|i| (vm[i] - 1.0).abs()).sum::<f64>() / 32.0;
    let expect = -(vterm + 0.1 * qsum / 6.0);
    assert!((s.reward - expect).abs() < 1e-12, "{} vs {expect}", s.reward);
    let cr = if (1..33).all(|i| vm[i] >= 0.95 && vm[i] <= 1.05) { 1.0 } else { 0.0 };
    assert_eq!(s.metrics.cr, cr);
    assert!((s.metrics.ql_mvar - qsum / 6.0).abs() < 1e-12);
}

#[test]
fn ac_backend_voltages_equal_the_engines_batch_solve() {
    for name in ["mapdn33", "mapdn322", "rural2_96"] {
        let t = task(name);
        let mut env = VoltageEnv::new(t.clone()).unwrap();
        env.reset(5, &test_opts()).unwrap();
        let mut c = RandomControl::default();
        c.reset(&env, 5);
        let mut a = vec![0.0; env.n_agents()];
        for _ in 0..3 {
            c.act(&env, &mut a);
            for x in a.iter_mut() {
                *x *= 0.2;
            }
            let s = env.step(&a).unwrap();
            assert!(!s.metrics.diverged);
            let (p, q) = env.injections();
            let out = solve_batch(&t.network, Method::Ac(AcOptions::default()), p, q, 1).unwrap();
            let d = out.vm_row(0).iter().zip(env.vm_pu()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(d < 1e-12, "{name}: env and batch differ by {d:e}");
            // The injections are the data: Σ PV p − Σ load p per bus.
            let mut pb = vec![0.0; t.network.n_bus()];
            for (k, pv) in t.pvs.iter().enumerate() {
                pb[pv.bus] += env.pv_p_mw()[k];
            }
            assert!(p.iter().zip(&pb).all(|(x, y)| x <= &(y + 1e-15)), "{name}: loads must only subtract");
        }
    }
}

fn run_episode(env: &mut VoltageEnv, seed: u64, steps: usize) -> (Vec<f64>, Vec<f32>) {
    env.reset(seed, &ResetOptions::default()).unwrap();
    let mut c = RandomControl::default();
    c.reset(env, seed);
    let mut a = vec![0.0; env.n_agents()];
    let mut rewards = Vec::new();
    let mut obs = env.observations().to_vec();
    for _ in 0..steps {
        c.act(env, &mut a);
        let s = env.step(&a).unwrap();
        rewards.push(s.reward);
        obs.extend_from_slice(env.observations());
        obs.extend_from_slice(env.state());
        if s.terminated || s.truncated {
            break;
        }
    }
    (rewards, obs)
}

#[test]
fn same_seed_same_episode_different_seed_different_episode() {
    let mut t = Task::builtin("mapdn33").unwrap().spec;
    t.noise.fluctuation_sigma = 0.05;
    t.observation.voltage_noise_pu = 0.002;
    let t = Arc::new(Task::build(t, "test", None).unwrap());
    let mut a = VoltageEnv::new(t.clone()).unwrap();
    let mut b = VoltageEnv::new(t.clone()).unwrap();
    let ra = run_episode(&mut a, 42, 50);
    let rb = run_episode(&mut b, 42, 50);
    assert_eq!(ra, rb);
    let rc = run_episode(&mut b, 43, 50);
    assert_ne!(ra.0, rc.0);
    // Re-running on a used environment gives the same episode again.
    assert_eq!(run_episode(&mut a, 42, 50), ra);
}

#[test]
fn vectorised_equals_sequential() {
    let t = task("mapdn33");
    let n = 5;
    let seeds: Vec<u64> = (0..n as u64).map(|i| 100 + i).collect();
    let opts = ResetOptions::default();
    let mut seq: Vec<VoltageEnv> = (0..n).map(|_| VoltageEnv::new(t.clone()).unwrap()).collect();
    let mut vec = VecEnv::new((0..n).map(|_| VoltageEnv::new(t.clone()).unwrap()).collect(), 2);
    for (e, &s) in seq.iter_mut().zip(&seeds) {
        e.reset(s, &opts).unwrap();
    }
    vec.reset(&seeds, &opts).unwrap();
    let (na, od, sd) = (vec.n_agents(), vec.obs_dim(), vec.state_dim());
    let mut actions = vec![0.0; n * na];
    for step in 0..30 {
        for (i, a) in actions.iter_mut().enumerate() {
            *a = ((i * 7 + step * 13) % 17) as f64 / 8.0 - 1.0;
        }
        vec.step(&actions).unwrap();
        for (i, e) in seq.iter_mut().enumerate() {
            let s = e.step(&actions[i * na..(i + 1) * na]).unwrap();
            assert_eq!(vec.steps()[i], Some(s), "env {i} step {step}");
            assert_eq!(&vec.observations()[i * na * od..(i + 1) * na * od], e.observations());
            assert_eq!(&vec.states()[i * sd..(i + 1) * sd], e.state());
        }
    }
}

#[test]
fn clean_episodes_have_exactly_episode_steps_transitions_and_truncate() {
    let t = task("mapdn33");
    let mut env = VoltageEnv::new(t.clone()).unwrap();
    env.reset(1, &test_opts()).unwrap();
    let a = vec![0.0; 6];
    let mut n = 0;
    loop {
        let s = env.step(&a).unwrap();
        n += 1;
        if s.terminated || s.truncated {
            assert!(s.truncated && !s.terminated);
            break;
        }
    }
    assert_eq!(n, 240);
    assert!(env.step(&a).is_err(), "stepping a finished episode is refused");
    // Compat: MAPDN's 239 transitions, the time limit as a terminal.
    let t = with_mode("mapdn33", Mode::Compat);
    let mut env = VoltageEnv::new(t).unwrap();
    env.reset(1, &test_opts()).unwrap();
    let mut n = 0;
    loop {
        let s = env.step(&a).unwrap();
        n += 1;
        if s.terminated || s.truncated {
            assert!(s.terminated && !s.truncated);
            break;
        }
    }
    assert_eq!(n, 239);
}

#[test]
fn compat_observations_are_raw_and_mix_rows_clean_ones_are_normalised() {
    let t = with_mode("mapdn33", Mode::Compat);
    assert!(!t.normalize);
    let mut env = VoltageEnv::new(t.clone()).unwrap();
    env.reset(2, &test_opts()).unwrap();
    env.step(&[0.1; 6]).unwrap();
    // Agent 0 (zone1, 12 buses): raw |V| of its zone buses after 2·12 + 2 entries.
    let o = env.observation(0);
    let z = &t.zones[0];
    for (j, &b) in z.buses.iter().enumerate() {
        assert_eq!(o[26 + j], env.vm_pu()[b] as f32);
    }
    // State angles in degrees.
    let n = 33;
    assert_eq!(env.state()[3 * n + 12 + 10], env.va_rad()[10].to_degrees() as f32);
    // Clean: per-block padding to max|Z| and (v − 1)/0.05.
    let t = task("mapdn33");
    let mut env = VoltageEnv::new(t.clone()).unwrap();
    env.reset(2, &test_opts()).unwrap();
    env.step(&[0.1; 6]).unwrap();
    let o = env.observation(3); // agent 3: PV at bus 24, zone3 (3 buses), blocks of 12
    let z = &t.zones[t.pvs[3].zone];
    assert_eq!(z.buses.len(), 3);
    for (j, &b) in z.buses.iter().enumerate() {
        assert_eq!(o[2 * 12 + 2 + j], ((env.vm_pu()[b] - 1.0) / 0.05) as f32);
    }
    assert_eq!(o[2 * 12 + 2 + 3], 0.0, "padding");
    assert_eq!(o[24], (env.pv_p_mw()[3] / t.power_scale_mw) as f32, "own p");
}

#[test]
fn lindistflow_backend_runs_and_stays_close_to_ac() {
    let t = task("mapdn33");
    let mut ac = VoltageEnv::with_backend(t.clone(), Backend::Ac).unwrap();
    let mut ldf = VoltageEnv::with_backend(t.clone(), Backend::Lindistflow).unwrap();
    ac.reset(9, &test_opts()).unwrap();
    ldf.reset(9, &test_opts()).unwrap();
    for _ in 0..20 {
        ac.step(&[0.3; 6]).unwrap();
        ldf.step(&[0.3; 6]).unwrap();
        let d = ac.vm_pu().iter().zip(ldf.vm_pu()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 0.02, "LinDistFlow vs AC: {d}");
    }
}

#[test]
fn divergence_is_a_terminal_step_with_a_penalty() {
    let mut spec = Task::builtin("mapdn33").unwrap().spec;
    spec.loads.peak_total_mw = Some(60.0); // far beyond the feeder's loadability
    spec.noise.data = voltarena_env::task::DataNoise::None;
    let t = Arc::new(Task::build(spec, "test", None).unwrap());
    let mut env = VoltageEnv::new(t).unwrap();
    // Reset retries starts until one solves (night-time light load); then find a failing step.
    match env.reset(0, &test_opts()) {
        Err(e) => assert!(e.to_string().contains("no episode start")),
        Ok(()) => {
            let mut seen = false;
            for _ in 0..240 {
                let s = env.step(&[0.0; 6]).unwrap();
                if s.metrics.diverged {
                    assert!(s.terminated);
                    assert_eq!(s.metrics.cr, 0.0);
                    assert!(s.reward <= -200.0);
                    assert_eq!(env.episode_metrics().divergences, 1);
                    seen = true;
                    break;
                }
                if s.truncated {
                    break;
                }
            }
            assert!(seen, "60 MW on the 33-bus feeder must collapse at some point of the day");
        }
    }
}

#[test]
fn faults_and_lost_messages() {
    use voltarena_env::task::{AgentFault, FaultKind};
    let mut spec = Task::builtin("mapdn33").unwrap().spec;
    spec.faults.agents = vec![
        AgentFault { agent: 0, from_step: 2, to_step: 3, kind: FaultKind::Frozen },
        AgentFault { agent: 1, from_step: 2, to_step: 2, kind: FaultKind::Zero },
    ];
    let t = Arc::new(Task::build(spec.clone(), "test", None).unwrap());
    let mut env = VoltageEnv::new(t).unwrap();
    env.reset(4, &test_opts()).unwrap();
    env.step(&[0.5; 6]).unwrap();
    let q1 = env.q_mvar().to_vec();
    env.step(&[-0.5; 6]).unwrap();
    assert_eq!(env.q_mvar()[0], q1[0], "frozen agent keeps its setpoint");
    assert_eq!(env.q_mvar()[1], 0.0, "zeroed agent");
    assert!(env.q_mvar()[2] < 0.0, "healthy agent follows its action");
    env.step(&[-0.5; 6]).unwrap(); // step 3: agent 1 healthy again, agent 0 still frozen
    assert_eq!(env.q_mvar()[0], q1[0]);
    assert!(env.q_mvar()[1] < 0.0);
    // Every message lost: all setpoints stay at the reset value 0.
    spec.faults.agents.clear();
    spec.faults.drop_prob = 1.0;
    let mut env = VoltageEnv::new(Arc::new(Task::build(spec, "test", None).unwrap())).unwrap();
    env.reset(4, &test_opts()).unwrap();
    env.step(&[0.9; 6]).unwrap();
    assert!(env.q_mvar().iter().all(|q| *q == 0.0));
}

#[test]
fn splits_are_disjoint_and_episodes_stay_inside_them() {
    let t = task("mapdn33");
    let days = |s: Split| s.runs(366).iter().map(|(a, b)| b - a + 1).sum::<usize>();
    assert_eq!((days(Split::Train), days(Split::Val), days(Split::Test)), (262, 52, 52));
    let per_day = 86_400 / 180;
    for split in [Split::Train, Split::Val, Split::Test] {
        let mut env = VoltageEnv::new(t.clone()).unwrap();
        for seed in 0..50 {
            env.reset(seed, &ResetOptions { split, ..Default::default() }).unwrap();
            let first = env.start_step() / per_day;
            let last = (env.start_step() + 240) / per_day;
            for d in first..=last {
                assert_eq!(Split::of_day(d), split, "seed {seed}: day {d} of a {split:?} episode");
            }
        }
    }
}

fn bad_task(edit: impl Fn(String) -> String) -> String {
    let text = edit(include_str!("../../configs/tasks/mapdn33.toml").to_string());
    Task::from_toml(&text, "bad.toml", None).unwrap_err().to_string()
}

#[test]
fn bad_task_files_get_clear_errors() {
    let e = bad_task(|s| s.replace("\"PV1\", ", "\"PV9\", "));
    assert!(e.contains("bad.toml") && e.contains("pv.profiles") && e.contains("unknown profile 'PV9'"), "{e}");
    let e = bad_task(|s| s.replace("buses = [\"18-21\"]", "buses = [\"18-21\", 99]"));
    assert!(e.contains("zones.list[1].buses") && e.contains("bus id 99 is not in the network"), "{e}");
    let e = bad_task(|s| s.replace("buses = [\"18-21\"]", "buses = [\"17-21\"]"));
    assert!(e.contains("zones must not overlap") && e.contains("17"), "{e}");
    let e = bad_task(|s| s.replace("rating_factor = 1.2", "rating_factor = -1.2"));
    assert!(e.contains("pv.rating_factor"), "{e}");
    let e = bad_task(|s| s.replace("action_scale = 0.8", "action_scale = 0.8\nactoin = 1"));
    assert!(e.contains("unknown field") && e.contains("actoin") && e.contains("line"), "{e}");
    let e = bad_task(|s| s.replace("networks/mapdn_case33.json", "networks/nope.json"));
    assert!(e.contains("network") && e.contains("nope.json"), "{e}");
    let e = bad_task(|s| s.replace("episode_steps = 240", "episode_steps = 5000"));
    assert!(e.contains("episode_steps"), "{e}");
    let e = bad_task(|s| s.replace("name = \"zone4\"   # PV buses: 28, 32\nbuses = [\"25-32\"]", "name = \"zone4\"\nbuses = [\"25-27\"]"));
    assert!(e.contains("is in no zone"), "{e}");
    assert!(Task::load("no_such_task").unwrap_err().to_string().contains("built-in tasks: mapdn33"));
}

#[test]
fn explicit_pv_units_and_their_errors() {
    let base = include_str!("../../configs/tasks/mapdn33.toml");
    let units = base.replace(
        "placement = \"sgens\"",
        "placement = \"units\"\nunits = [{ bus = 12, dc_kw = 400.0, profile = \"PV3\" }, { bus = 30, dc_kw = 250.0, profile = \"PV5\" }]",
    );
    let t = Task::from_toml(&units, "units.toml", None).unwrap();
    assert_eq!(t.n_agents(), 2);
    assert_eq!(t.bus_id[t.pvs[1].bus], 30);
    let missing = units.replace("bus = 30,", "bus = 99,");
    let e = Task::from_toml(&missing, "units.toml", None).unwrap_err().to_string();
    assert!(e.contains("pv.units[1].bus") && e.contains("bus id 99 is not in the network"), "{e}");
    let negative = units.replace("dc_kw = 250.0", "dc_kw = -250.0");
    let e = Task::from_toml(&negative, "units.toml", None).unwrap_err().to_string();
    assert!(e.contains("pv.units[1].dc_kw"), "{e}");
}

#[test]
fn malformed_profile_files_name_file_line_and_column() {
    use voltarena_env::profiles::Profiles;
    let path = std::path::Path::new("p.csv");
    let good_rows: String = (0..96).map(|i| format!("{i},0.5,0.1\n")).collect();
    let check = |text: String, expect: &str| {
        let mut p = Profiles::load_dir(&voltarena_env::task::data_dir().join("profiles")).unwrap();
        let e = p.add_csv(text.as_bytes(), path).unwrap_err().to_string();
        assert!(e.contains("p.csv") && e.contains(expect), "{e}");
    };
    check(format!("step,X_pload,X_qload\n{good_rows}"), "rows, but the other profile file has");
    check(format!("step,Y_pload,Y_qload\n0,0.5,abc\n"), "p.csv:2: column 'Y_qload': expected a number, found 'abc'");
    check(format!("step,Z_pload,Z_qload\n0,0.5\n"), "p.csv:2: expected 3 columns, found 2");
    check(format!("step,W_pload\n1,0.5\n"), "column 'step': expected 0, found '1'");
    check("time,A\n".to_string(), "expected a header 'step,<profile>,...'");
    check("step,PV1\n0,0.1\n".to_string(), "profile 'PV1' appears twice");
    // Interpolation between quarter hours is linear.
    let p = Profiles::load_dir(&voltarena_env::task::data_dir().join("profiles")).unwrap();
    let c = p.column("PV4").unwrap();
    let v = p.values(c);
    let noon = 48 + 96 * 170;
    assert_eq!(p.at(c, noon as f64 * 900.0), v[noon]);
    assert!((p.at(c, noon as f64 * 900.0 + 180.0) - (0.8 * v[noon] + 0.2 * v[noon + 1])).abs() < 1e-12);
}

#[test]
fn start_window_restricts_episode_starts_to_its_local_times() {
    let task = std::sync::Arc::new(Task::builtin("rural2_96_midday").unwrap());
    assert_eq!(task.start_window(), Some((10 * 3600, 11 * 3600)));
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let per_day = 86_400 / task.spec.resolution_s as usize;
    for split in [Split::Train, Split::Val, Split::Test] {
        for seed in 0..40 {
            env.reset(seed, &ResetOptions { split, ..Default::default() }).unwrap();
            let tod = (env.start_step() % per_day) * task.spec.resolution_s as usize;
            assert!((10 * 3600..=11 * 3600).contains(&tod), "{split:?} seed {seed}: starts at {tod} s of the day");
        }
    }
    // A window that is not one is refused by field.
    let text = include_str!("../../configs/tasks/rural2_96_midday.toml").replace("start_window = [\"10:00\", \"11:00\"]", "start_window = [\"13:00\", \"12:00\"]");
    let err = Task::from_toml(&text, "bad.toml", None).err().unwrap().to_string();
    assert!(err.contains("start_window"), "{err}");
}

#[test]
fn curtailment_caps_pv_infeed_until_reset_and_bad_caps_are_refused() {
    let task = std::sync::Arc::new(Task::builtin("rural2_96_midday").unwrap());
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let opts = ResetOptions { split: Split::Test, ..Default::default() };
    env.reset(3, &opts).unwrap();
    let n = env.n_agents();
    let zero = vec![0.0; n];
    let free = env.step(&zero).unwrap().metrics;
    assert!(free.pv_mw > 0.0 && free.curtailed_mw == 0.0, "midday: PV feeds in, nothing curtailed");
    // Half of every PV's offer, from the next step on.
    let caps: Vec<f64> = env.pv_available_mw().iter().map(|p| 0.5 * p).collect();
    env.set_curtailment(&caps).unwrap();
    let m = env.step(&zero).unwrap().metrics;
    let offered: f64 = env.pv_available_mw().iter().sum();
    assert!((m.pv_mw + m.curtailed_mw - offered).abs() < 1e-12 && m.curtailed_mw > 0.3 * offered, "{m:?}");
    assert!(env.episode_metrics().curtailed_kwh > 0.0);
    // A reset lifts the caps.
    env.reset(3, &opts).unwrap();
    assert_eq!(env.step(&zero).unwrap().metrics.curtailed_mw, 0.0);
    assert!(env.set_curtailment(&caps[1..]).is_err(), "one cap per agent");
    let mut bad = caps.clone();
    bad[7] = f64::NAN;
    assert!(env.set_curtailment(&bad).is_err(), "NaN refused");
    bad[7] = -1.0;
    assert!(env.set_curtailment(&bad).is_err(), "negative refused");
}

#[test]
fn the_violation_term_charges_exactly_the_steps_cr_fails() {
    // Same episode and actions with w_v = 0 and w_v = 0.7: the rewards differ by 0.7 exactly on the
    // steps where some bus is outside [v_min, v_max] (checked here from the voltages themselves),
    // and are equal elsewhere. mapdn141 over-voltages at noon without control, so both kinds occur.
    let base = Task::builtin("mapdn141").unwrap();
    let mut spec = base.spec.clone();
    spec.reward.violation_weight = 0.7;
    let weighted = Arc::new(Task::build(spec, "test", None).unwrap());
    let (mut a, mut b) = (VoltageEnv::new(Arc::new(base)).unwrap(), VoltageEnv::new(weighted.clone()).unwrap());
    let opts = ResetOptions { split: Split::Test, ..Default::default() };
    a.reset(5, &opts).unwrap();
    b.reset(5, &opts).unwrap();
    let actions = vec![0.0; weighted.n_agents()];
    let (mut failed, mut kept) = (0, 0);
    for _ in 0..120 {
        let (sa, sb) = (a.step(&actions).unwrap(), b.step(&actions).unwrap());
        let vm = b.vm_pu();
        let all_in = weighted.metric_buses.iter().all(|&i| vm[i] >= weighted.spec.v_min && vm[i] <= weighted.spec.v_max);
        let expect = if all_in { 0.0 } else { 0.7 };
        assert!((sa.reward - sb.reward - expect).abs() < 1e-12, "{} − {} vs {expect}", sa.reward, sb.reward);
        if all_in { kept += 1 } else { failed += 1 }
    }
    assert!(failed > 0 && kept > 0, "both kinds of step: {failed} failed, {kept} kept");
    assert!(toml::to_string(&voltarena_env::task::RewardSpec::default()).unwrap().find("violation_weight").is_none());
}
