//! `voltarena._voltarena` — the native half of the Python package: the Rust environment, its
//! vector form on threads, and the CLI's evaluation loop, with numpy arrays in and out. The
//! PettingZoo / Gymnasium classes around it are in `voltarena/__init__.py`.
//!
//! Nothing here re-implements the task: every step is `voltarena_env::VoltageEnv::step` behind the
//! same action pipeline (dead zone, safety layer) the CLI uses, and `rollout` is
//! `voltarena_env::deploy::rollout`, the loop of `voltarena rollout`.
//!
//! Bad input raises `ValueError` (unknown task, controller, split, backend or safety layer; a
//! wrong number of actions; NaN or ±inf) or `RuntimeError` (a step after the episode ended, a
//! power flow with no solution at reset); nothing panics across the boundary.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use voltarena_baselines::{ControllerSpec, Faults};
use voltarena_env::deploy::{ActionPipeline, Deployed, Deployment, RolloutMetrics};
use voltarena_env::safety::{SafetyConfig, SafetyKind};
use voltarena_env::task::Backend;
use voltarena_env::{Controller, EnvError, ResetOptions, Split, Step, Task, VoltageEnv};

fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn env_err(e: EnvError) -> PyErr {
    match e {
        EnvError::ActionCount { .. } | EnvError::InvalidAction { .. } => PyValueError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// A built-in task name or a task TOML path, with its `mode` replaced where `mode` is given.
fn load_task(task: &str, mode: Option<&str>) -> PyResult<Arc<Task>> {
    let Some(mode) = mode else {
        return Task::load(task).map(Arc::new).map_err(value_err);
    };
    if mode != "clean" && mode != "compat" {
        return Err(PyValueError::new_err(format!("mode: expected \"clean\" or \"compat\", got {mode:?}")));
    }
    let (text, source, dir) = match voltarena_env::task::builtin_toml(task) {
        Some(t) => (t.to_string(), format!("builtin:{task}"), None),
        None => {
            let path = Path::new(task);
            let text = std::fs::read_to_string(path).map_err(|e| {
                PyValueError::new_err(format!("unknown task '{task}' (built-in tasks: {}; or a task TOML file): {e}", voltarena_env::task::builtin_names().join(", ")))
            })?;
            (text, task.to_string(), path.parent().map(Path::to_path_buf))
        }
    };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| PyValueError::new_err(format!("{source}: {}", e.message())))?;
    table.insert("mode".into(), toml::Value::String(mode.into()));
    let text = toml::to_string(&table).map_err(value_err)?;
    Task::from_toml(&text, &source, dir.as_deref()).map(Arc::new).map_err(value_err)
}

fn parse_split(s: &str) -> PyResult<Split> {
    match s {
        "train" => Ok(Split::Train),
        "val" => Ok(Split::Val),
        "test" => Ok(Split::Test),
        _ => Err(PyValueError::new_err(format!("split: expected \"train\", \"val\" or \"test\", got {s:?}"))),
    }
}

fn parse_backend(task: &Task, s: Option<&str>) -> PyResult<Backend> {
    match s {
        None => Ok(task.spec.backend),
        Some("ac") => Ok(Backend::Ac),
        Some("lindistflow") => Ok(Backend::Lindistflow),
        Some(b) => Err(PyValueError::new_err(format!("backend: expected \"ac\" or \"lindistflow\", got {b:?}"))),
    }
}

fn parse_deployment(safety: Option<&str>, dead_zone: f64) -> PyResult<Deployment> {
    let kind = match safety {
        None => SafetyKind::None,
        Some(s) => s.parse::<SafetyKind>().map_err(|e| PyValueError::new_err(format!("safety: {e}")))?,
    };
    if !(0.0..1.0).contains(&dead_zone) {
        return Err(PyValueError::new_err(format!("dead_zone: expected a number in [0, 1), got {dead_zone}")));
    }
    Ok(Deployment { dead_zone, safety: SafetyConfig { kind, ..Default::default() }, ..Default::default() })
}

fn step_info<'py>(py: Python<'py>, s: &Step, intervened: bool) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let m = &s.metrics;
    d.set_item("cr", m.cr)?;
    d.set_item("ql_mvar", m.ql_mvar)?;
    d.set_item("violation_pu", m.violation_pu)?;
    d.set_item("max_violation_pu", m.max_violation_pu)?;
    d.set_item("v_min_pu", m.v_min_pu)?;
    d.set_item("v_max_pu", m.v_max_pu)?;
    d.set_item("loss_mw", m.loss_mw)?;
    d.set_item("diverged", m.diverged)?;
    d.set_item("pv_mw", m.pv_mw)?;
    d.set_item("curtailed_mw", m.curtailed_mw)?;
    d.set_item("safety_intervened", intervened)?;
    Ok(d)
}

/// One environment behind its action pipeline.
struct Slot {
    env: VoltageEnv,
    pipeline: ActionPipeline,
    applied: Vec<f64>,
}

impl Slot {
    fn new(task: &Arc<Task>, backend: Backend, deployment: Deployment) -> PyResult<Slot> {
        let env = VoltageEnv::with_backend(task.clone(), backend).map_err(env_err)?;
        let pipeline = ActionPipeline::new(task, deployment).map_err(value_err)?;
        Ok(Slot { applied: vec![0.0; env.n_agents()], env, pipeline })
    }

    /// Actions through the pipeline, then one step. NaN / ±inf are refused before the pipeline
    /// (the safety layer would otherwise turn them into numbers).
    fn step(&mut self, raw: &[f64]) -> Result<(Step, bool), EnvError> {
        if raw.len() != self.applied.len() {
            return Err(EnvError::ActionCount { expected: self.applied.len(), got: raw.len() });
        }
        if let Some((k, &v)) = raw.iter().enumerate().find(|(_, a)| !a.is_finite()) {
            return Err(EnvError::InvalidAction { agent: k, value: v });
        }
        let info = self.pipeline.apply(&self.env, raw, &mut self.applied);
        Ok((self.env.step(&self.applied)?, info.intervened))
    }
}

/// One environment (the native side of `voltarena.parallel_env`).
#[pyclass(module = "voltarena._voltarena")]
struct Env {
    slot: Slot,
    task: Arc<Task>,
    split: Split,
    backend: Backend,
    deployment: Deployment,
}

#[pymethods]
impl Env {
    #[new]
    #[pyo3(signature = (task, mode=None, backend=None, split="train", safety=None, dead_zone=0.0))]
    fn new(task: &str, mode: Option<&str>, backend: Option<&str>, split: &str, safety: Option<&str>, dead_zone: f64) -> PyResult<Env> {
        let task = load_task(task, mode)?;
        let backend = parse_backend(&task, backend)?;
        let split = parse_split(split)?;
        let deployment = parse_deployment(safety, dead_zone)?;
        Ok(Env { slot: Slot::new(&task, backend, deployment)?, task, split, backend, deployment })
    }

    /// Resets to an episode of the split drawn with `seed` (or starting at task step `start`);
    /// returns (observations [agents, obs_dim] f32, state [state_dim] f32).
    #[pyo3(signature = (seed, start=None, split=None))]
    fn reset<'py>(&mut self, py: Python<'py>, seed: u64, start: Option<usize>, split: Option<&str>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray1<f32>>)> {
        let split = match split {
            Some(s) => parse_split(s)?,
            None => self.split,
        };
        let opts = ResetOptions { split, start, ..Default::default() };
        self.slot.env.reset(seed, &opts).map_err(env_err)?;
        self.slot.pipeline.reset();
        Ok((self.obs(py)?, PyArray1::from_slice(py, self.slot.env.state())))
    }

    /// One step with one action per agent (float64 [agents]); returns (observations, state,
    /// reward, terminated, truncated, info).
    #[allow(clippy::type_complexity)]
    fn step<'py>(&mut self, py: Python<'py>, actions: PyReadonlyArray1<'py, f64>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray1<f32>>, f64, bool, bool, Bound<'py, PyDict>)> {
        let raw = actions.as_slice().map_err(value_err)?;
        let (s, intervened) = self.slot.step(raw).map_err(env_err)?;
        let info = step_info(py, &s, intervened)?;
        Ok((self.obs(py)?, PyArray1::from_slice(py, self.slot.env.state()), s.reward, s.terminated, s.truncated, info))
    }

    /// Metrics of the current episode so far (the keys of `evaluate`'s result, without the safety counters).
    fn episode_metrics(&self) -> PyResult<String> {
        serde_json::to_string(&self.slot.env.episode_metrics().summary(&self.task.bus_id)).map_err(value_err)
    }

    #[getter]
    fn n_agents(&self) -> usize {
        self.slot.env.n_agents()
    }
    #[getter]
    fn obs_dim(&self) -> usize {
        self.slot.env.obs_dim()
    }
    #[getter]
    fn state_dim(&self) -> usize {
        self.slot.env.state_dim()
    }
    #[getter]
    fn episode_steps(&self) -> usize {
        self.task.spec.episode_steps
    }
    #[getter]
    fn name(&self) -> String {
        self.task.spec.name.clone()
    }
    /// Bus id of each agent's inverter.
    #[getter]
    fn agent_buses(&self) -> Vec<i64> {
        self.task.pvs.iter().map(|p| self.task.bus_id[p.bus]).collect()
    }
    /// Step within the episode.
    #[getter]
    fn t(&self) -> usize {
        self.slot.env.t()
    }
    /// The resolved settings: task, backend, split, deployment (JSON).
    fn config(&self) -> PyResult<String> {
        serde_json::to_string(&serde_json::json!({
            "task": self.task.spec.name, "mode": self.task.spec.mode, "backend": self.backend, "split": self.split,
            "deployment": self.deployment,
        }))
        .map_err(value_err)
    }
}

impl Env {
    fn obs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyArray1::from_slice(py, self.slot.env.observations()).reshape([self.slot.env.n_agents(), self.slot.env.obs_dim()])?.into_any())
    }
}

/// N environments stepped on threads, with Gymnasium's same-step auto-reset (the native side of
/// `voltarena.VectorEnv`). Environment i's e-th episode is drawn with seed `seed + i + N·e`.
#[pyclass(module = "voltarena._voltarena")]
struct VecEnv {
    slots: Vec<Slot>,
    /// Episodes started per environment since the last `reset`.
    episodes: Vec<u64>,
    seed: u64,
    split: Split,
    pool: rayon::ThreadPool,
    n_agents: usize,
    obs_dim: usize,
    state_dim: usize,
    obs: Vec<f32>,
    state: Vec<f32>,
    final_obs: Vec<f32>,
    final_state: Vec<f32>,
    reward: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    cr: Vec<f64>,
    ql: Vec<f64>,
    v_max: Vec<f64>,
    v_min: Vec<f64>,
    diverged: Vec<bool>,
    started: bool,
}

#[pymethods]
impl VecEnv {
    #[new]
    #[pyo3(signature = (task, num_envs, mode=None, backend=None, split="train", safety=None, dead_zone=0.0, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(task: &str, num_envs: usize, mode: Option<&str>, backend: Option<&str>, split: &str, safety: Option<&str>, dead_zone: f64, threads: Option<usize>) -> PyResult<VecEnv> {
        if num_envs == 0 {
            return Err(PyValueError::new_err("num_envs: expected at least 1"));
        }
        let task = load_task(task, mode)?;
        let backend = parse_backend(&task, backend)?;
        let split = parse_split(split)?;
        let deployment = parse_deployment(safety, dead_zone)?;
        let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).clamp(1, num_envs);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(value_err)?;
        let slots = (0..num_envs).map(|_| Slot::new(&task, backend, deployment)).collect::<PyResult<Vec<_>>>()?;
        let (a, d, s) = (slots[0].env.n_agents(), slots[0].env.obs_dim(), slots[0].env.state_dim());
        Ok(VecEnv {
            slots,
            episodes: vec![0; num_envs],
            seed: 0,
            split,
            pool,
            n_agents: a,
            obs_dim: d,
            state_dim: s,
            obs: vec![0.0; num_envs * a * d],
            state: vec![0.0; num_envs * s],
            final_obs: vec![0.0; num_envs * a * d],
            final_state: vec![0.0; num_envs * s],
            reward: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            cr: vec![0.0; num_envs],
            ql: vec![0.0; num_envs],
            v_max: vec![0.0; num_envs],
            v_min: vec![0.0; num_envs],
            diverged: vec![false; num_envs],
            started: false,
        })
    }

    /// Resets every environment (environment i with seed `seed + i`); returns (observations
    /// [N, agents, obs_dim] f32, states [N, state_dim] f32).
    fn reset<'py>(&mut self, py: Python<'py>, seed: u64) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        self.seed = seed;
        self.episodes.fill(0);
        let (n, split) = (self.slots.len() as u64, self.split);
        let (ad, sd) = (self.n_agents * self.obs_dim, self.state_dim);
        let err: Mutex<Option<EnvError>> = Mutex::new(None);
        let (slots, episodes, obs, state) = (&mut self.slots, &mut self.episodes, &mut self.obs, &mut self.state);
        py.detach(|| {
            self.pool.install(|| {
                slots.par_iter_mut().zip(episodes.par_iter_mut()).zip(obs.par_chunks_mut(ad)).zip(state.par_chunks_mut(sd)).enumerate().for_each(|(i, (((slot, ep), o), s))| {
                    let r = slot.env.reset(episode_seed(seed, i as u64, n, 0), &ResetOptions { split, ..Default::default() });
                    slot.pipeline.reset();
                    *ep = 1;
                    match r {
                        Ok(()) => {
                            o.copy_from_slice(slot.env.observations());
                            s.copy_from_slice(slot.env.state());
                        }
                        Err(e) => {
                            err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        }
                    }
                })
            })
        });
        if let Some(e) = err.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(env_err(e));
        }
        self.started = true;
        Ok((self.obs_array(py, false)?, self.state_array(py, false)?))
    }

    /// Steps every environment with `actions` (float64 [N, agents]). An environment whose episode
    /// ends is reset at once (same-step auto-reset): its row of the returned observations is the
    /// new episode's first, and, on steps where an episode ended, `info["final_obs"]` /
    /// `info["final_state"]` hold the last ones (rows where `info["_final"]` is true). Returns (observations, states, rewards [N],
    /// terminated [N], truncated [N], info).
    #[allow(clippy::type_complexity)]
    fn step<'py>(&mut self, py: Python<'py>, actions: PyReadonlyArray2<'py, f64>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        if !self.started {
            return Err(PyRuntimeError::new_err("call reset() before step()"));
        }
        let n = self.slots.len();
        let shape = actions.shape();
        if shape != [n, self.n_agents] {
            return Err(PyValueError::new_err(format!("actions: expected shape ({n}, {}), got {shape:?}", self.n_agents)));
        }
        let raw = actions.as_slice().map_err(value_err)?;
        if let Some(i) = raw.iter().position(|a| !a.is_finite()) {
            return Err(PyValueError::new_err(format!("actions[{}, {}] is not a finite number ({})", i / self.n_agents, i % self.n_agents, raw[i])));
        }
        let (seed, split, nn) = (self.seed, self.split, n as u64);
        let (a, ad, sd) = (self.n_agents, self.n_agents * self.obs_dim, self.state_dim);
        let err: Mutex<Option<(usize, EnvError)>> = Mutex::new(None);
        let VecEnv { slots, episodes, obs, state, final_obs, final_state, reward, terminated, truncated, cr, ql, v_max, v_min, diverged, pool, .. } = self;
        py.detach(|| {
            pool.install(|| {
                slots
                    .par_iter_mut()
                    .zip(episodes.par_iter_mut())
                    .zip(obs.par_chunks_mut(ad).zip(state.par_chunks_mut(sd)))
                    .zip(final_obs.par_chunks_mut(ad).zip(final_state.par_chunks_mut(sd)))
                    .zip(reward.par_iter_mut().zip(terminated.par_iter_mut()).zip(truncated.par_iter_mut()))
                    .zip(cr.par_iter_mut().zip(ql.par_iter_mut()).zip(v_max.par_iter_mut().zip(v_min.par_iter_mut())).zip(diverged.par_iter_mut()))
                    .enumerate()
                    .for_each(|(i, (((((slot, ep), (o, s)), (fo, fs)), ((r, te), tr)), (((c, q), (vx, vn)), dv)))| {
                        let st = match slot.step(&raw[i * a..(i + 1) * a]) {
                            Ok((st, _)) => st,
                            Err(e) => {
                                err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert((i, e));
                                return;
                            }
                        };
                        (*r, *te, *tr) = (st.reward, st.terminated, st.truncated);
                        (*c, *q, *vx, *vn, *dv) = (st.metrics.cr, st.metrics.ql_mvar, st.metrics.v_max_pu, st.metrics.v_min_pu, st.metrics.diverged);
                        if st.terminated || st.truncated {
                            fo.copy_from_slice(slot.env.observations());
                            fs.copy_from_slice(slot.env.state());
                            let e = slot.env.reset(episode_seed(seed, i as u64, nn, *ep), &ResetOptions { split, ..Default::default() });
                            slot.pipeline.reset();
                            *ep += 1;
                            if let Err(e) = e {
                                err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert((i, e));
                                return;
                            }
                        }
                        o.copy_from_slice(slot.env.observations());
                        s.copy_from_slice(slot.env.state());
                    })
            })
        });
        if let Some((i, e)) = err.into_inner().unwrap_or_else(|p| p.into_inner()) {
            // The vector is left part-stepped: refuse further steps until a reset.
            self.started = false;
            let msg = format!("environment {i}: {e}");
            return Err(match e {
                EnvError::ActionCount { .. } | EnvError::InvalidAction { .. } => PyValueError::new_err(msg),
                _ => PyRuntimeError::new_err(msg),
            });
        }
        let info = PyDict::new(py);
        let done: Vec<bool> = self.terminated.iter().zip(&self.truncated).map(|(a, b)| *a || *b).collect();
        // As Gymnasium's same-step auto-reset: the final observations only where an episode ended.
        if done.iter().any(|&d| d) {
            info.set_item("final_obs", self.obs_array(py, true)?)?;
            info.set_item("final_state", self.state_array(py, true)?)?;
            info.set_item("_final", PyArray1::from_slice(py, &done))?;
        }
        info.set_item("cr", PyArray1::from_slice(py, &self.cr))?;
        info.set_item("ql_mvar", PyArray1::from_slice(py, &self.ql))?;
        info.set_item("v_max_pu", PyArray1::from_slice(py, &self.v_max))?;
        info.set_item("v_min_pu", PyArray1::from_slice(py, &self.v_min))?;
        info.set_item("diverged", PyArray1::from_slice(py, &self.diverged))?;
        Ok((
            self.obs_array(py, false)?,
            self.state_array(py, false)?,
            PyArray1::from_slice(py, &self.reward).into_any(),
            PyArray1::from_slice(py, &self.terminated).into_any(),
            PyArray1::from_slice(py, &self.truncated).into_any(),
            info,
        ))
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.slots.len()
    }
    #[getter]
    fn n_agents(&self) -> usize {
        self.n_agents
    }
    #[getter]
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    #[getter]
    fn state_dim(&self) -> usize {
        self.state_dim
    }
    #[getter]
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

impl VecEnv {
    fn obs_array<'py>(&self, py: Python<'py>, last: bool) -> PyResult<Bound<'py, PyAny>> {
        let buf = if last { &self.final_obs } else { &self.obs };
        Ok(PyArray1::from_slice(py, buf).reshape([self.slots.len(), self.n_agents, self.obs_dim])?.into_any())
    }
    fn state_array<'py>(&self, py: Python<'py>, last: bool) -> PyResult<Bound<'py, PyAny>> {
        let buf = if last { &self.final_state } else { &self.state };
        Ok(PyArray1::from_slice(py, buf).reshape([self.slots.len(), self.state_dim])?.into_any())
    }
}

/// Seed of environment `i`'s episode `e` in a vector of `n`.
fn episode_seed(seed: u64, i: u64, n: u64, e: u64) -> u64 {
    seed.wrapping_add(i).wrapping_add(n.wrapping_mul(e))
}

/// A Python callable `obs_dict -> actions_dict` as a [`Controller`]. A Python exception (or a
/// malformed return value) is kept and stops the loop after the step.
struct PyPolicy {
    f: Py<PyAny>,
    agents: Vec<String>,
    error: Arc<Mutex<Option<PyErr>>>,
}

impl Controller for PyPolicy {
    fn name(&self) -> &str {
        "python"
    }
    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]) {
        actions.fill(0.0);
        if self.error.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return;
        }
        let r = Python::attach(|py| -> PyResult<()> {
            let obs = PyDict::new(py);
            for (k, name) in self.agents.iter().enumerate() {
                obs.set_item(name, PyArray1::from_slice(py, env.observation(k)))?;
            }
            let out = self.f.bind(py).call1((obs,))?;
            let out = out.cast::<PyDict>().map_err(|_| PyValueError::new_err("policy: expected a dict {agent: action} as the return value"))?;
            if out.len() != self.agents.len() {
                return Err(PyValueError::new_err(format!("policy: expected an action for each of the {} agents, got {}", self.agents.len(), out.len())));
            }
            for (k, name) in self.agents.iter().enumerate() {
                let v = out.get_item(name)?.ok_or_else(|| PyValueError::new_err(format!("policy: no action for agent {name:?}")))?;
                let a: f64 = match v.extract::<f64>() {
                    Ok(a) => a,
                    Err(_) => {
                        let arr: Vec<f64> = v.call_method0("__array__").and_then(|x| x.call_method0("ravel")).and_then(|x| x.call_method0("tolist")).and_then(|x| x.extract()).map_err(|_| PyValueError::new_err(format!("policy: action of {name:?} is not a number or a one-element array")))?;
                        if arr.len() != 1 {
                            return Err(PyValueError::new_err(format!("policy: action of {name:?} has {} elements, expected 1", arr.len())));
                        }
                        arr[0]
                    }
                };
                if !a.is_finite() {
                    return Err(PyValueError::new_err(format!("policy: action of {name:?} is not a finite number ({a})")));
                }
                actions[k] = a;
            }
            Ok(())
        });
        if let Err(e) = r {
            self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    }
}

/// The loop of `voltarena rollout`: `controller` (a registry name: none, random, droop,
/// centralized, nested, two_metric, qu2020, tang2024) or `policy` (a callable) on episodes seeded
/// `seed`, `seed + 1`, … of `split` until `steps` steps (default: one episode). Returns the JSON
/// of `voltarena rollout --json`'s `metrics` and the counts (`steps`, `episodes`).
#[pyfunction]
#[pyo3(signature = (task, controller=None, policy=None, agents=None, split="test", steps=None, seed=0, backend=None, safety=None, dead_zone=0.0, mode=None))]
#[allow(clippy::too_many_arguments)]
fn rollout(
    py: Python<'_>,
    task: &str,
    controller: Option<&str>,
    policy: Option<Py<PyAny>>,
    agents: Option<Vec<String>>,
    split: &str,
    steps: Option<usize>,
    seed: u64,
    backend: Option<&str>,
    safety: Option<&str>,
    dead_zone: f64,
    mode: Option<&str>,
) -> PyResult<String> {
    let task = load_task(task, mode)?;
    let backend = parse_backend(&task, backend)?;
    let split = parse_split(split)?;
    let deployment = parse_deployment(safety, dead_zone)?;
    let error = Arc::new(Mutex::new(None));
    let ctl = make_controller(&task, controller, policy, agents, &error)?;
    let total = steps.unwrap_or(task.spec.episode_steps);
    if total == 0 {
        return Err(PyValueError::new_err("steps: expected at least 1"));
    }
    let mut env = VoltageEnv::with_backend(task.clone(), backend).map_err(env_err)?;
    let mut deployed = Deployed::new(ctl, &task, deployment).map_err(value_err)?;
    let failed = || error.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    // A Rust controller runs without the interpreter lock; a Python policy takes it per call.
    let r = py.detach(|| voltarena_env::deploy::rollout(&mut env, &mut deployed, split, seed, total, &mut |_, _| !failed())).map_err(env_err)?;
    if let Some(e) = error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let metrics = RolloutMetrics::new(&r, deployed.pipeline().stats());
    serde_json::to_string(&serde_json::json!({
        "steps": r.steps, "episodes": r.episodes, "metrics": metrics, "task": task.spec.name,
        "controller": deployed.name(), "deployment": deployment, "communication": deployed.communication(&task),
        "backend": backend, "split": split, "seed": seed,
    }))
    .map_err(value_err)
}

/// A registry controller by name, or a Python callable as one.
fn make_controller(task: &Task, controller: Option<&str>, policy: Option<Py<PyAny>>, agents: Option<Vec<String>>, error: &Arc<Mutex<Option<PyErr>>>) -> PyResult<Box<dyn Controller>> {
    match (controller, policy) {
        (Some(name), None) => {
            let spec = ControllerSpec::from_name(name).filter(|s| !matches!(s, ControllerSpec::Rl { .. })).ok_or_else(|| {
                PyValueError::new_err(format!("controller: unknown controller {name:?}; expected one of none, random, droop, centralized, nested, two_metric, qu2020, tang2024"))
            })?;
            spec.build(task, &Faults::default()).map_err(value_err)
        }
        (None, Some(f)) => {
            let agents = agents.unwrap_or_else(|| (0..task.n_agents()).map(|k| format!("agent_{k}")).collect());
            if agents.len() != task.n_agents() {
                return Err(PyValueError::new_err(format!("agents: expected {} names, got {}", task.n_agents(), agents.len())));
            }
            Ok(Box::new(PyPolicy { f, agents, error: error.clone() }))
        }
        _ => Err(PyValueError::new_err("give exactly one of controller (a name) and policy (a callable)")),
    }
}

/// The leaderboard's protocol for one suite seed: `episodes` test days seeded 100·seed + i, no
/// data noise (`voltarena leaderboard`'s own evaluation). Returns JSON: `metrics` (as in
/// leaderboard.json's `per_seed`), `deployment`, `communication`, `compute_us_per_step`.
#[pyfunction]
#[pyo3(signature = (task, seed, episodes, controller=None, policy=None, agents=None, safety=None, dead_zone=0.0))]
#[allow(clippy::too_many_arguments)]
fn evaluate_protocol(py: Python<'_>, task: &str, seed: u64, episodes: usize, controller: Option<&str>, policy: Option<Py<PyAny>>, agents: Option<Vec<String>>, safety: Option<&str>, dead_zone: f64) -> PyResult<String> {
    if episodes == 0 {
        return Err(PyValueError::new_err("episodes: expected at least 1"));
    }
    let task = load_task(task, None)?;
    let deployment = parse_deployment(safety, dead_zone)?;
    let error = Arc::new(Mutex::new(None));
    let ctl = make_controller(&task, controller, policy, agents, &error)?;
    let mut env = VoltageEnv::new(task.clone()).map_err(env_err)?;
    let mut deployed = Deployed::new(ctl, &task, deployment).map_err(value_err)?;
    let seeds = voltarena_env::deploy::protocol_seeds(seed, episodes);
    // After a Python policy fails it is not called again; the loop runs out with zero actions.
    let ev = py.detach(|| voltarena_env::deploy::evaluate(&mut env, &mut deployed, Split::Test, &seeds, &mut |_, _, _| {}));
    if let Some(e) = error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let ev = ev.map_err(env_err)?;
    serde_json::to_string(&serde_json::json!({
        "metrics": ev.metrics, "deployment": deployment, "communication": deployed.communication(&task),
        "compute_us_per_step": deployed.compute_us_per_step(),
    }))
    .map_err(value_err)
}

/// Names of the built-in tasks.
#[pyfunction]
fn tasks() -> Vec<&'static str> {
    voltarena_env::task::builtin_names()
}

/// The controllers `rollout` builds by name.
#[pyfunction]
fn controllers() -> Vec<&'static str> {
    ControllerSpec::NAMES.iter().copied().filter(|n| *n != "rl").collect()
}

/// Where the shipped networks and profiles are read from (`$VOLTARENA_DATA` wins).
#[pyfunction]
#[pyo3(signature = (path=None))]
fn set_data_dir(path: Option<PathBuf>) {
    voltarena_env::task::set_data_dir(path);
}

#[pyfunction]
fn data_dir() -> PathBuf {
    voltarena_env::task::data_dir()
}

#[pymodule]
fn _voltarena(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Env>()?;
    m.add_class::<VecEnv>()?;
    m.add_function(wrap_pyfunction!(rollout, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_protocol, m)?)?;
    m.add_function(wrap_pyfunction!(tasks, m)?)?;
    m.add_function(wrap_pyfunction!(controllers, m)?)?;
    m.add_function(wrap_pyfunction!(set_data_dir, m)?)?;
    m.add_function(wrap_pyfunction!(data_dir, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
