//! N environments stepped in parallel on persistent worker threads (crossbeam channels).
//!
//! Each worker owns a contiguous chunk of the environments; a step sends every worker its slice
//! of the actions and collects observations, states and step results into one row-major buffer.
//! Environments never share state, so the results equal stepping each environment on its own
//! (the tests check it bit for bit). Buffers travel back and forth between the caller and the
//! workers, so a step allocates nothing after the first.

use crate::env::{EnvError, ResetOptions, Step, VoltageEnv};
use crossbeam::channel::{bounded, Receiver, Sender};
use std::thread::JoinHandle;

enum Cmd {
    Reset { seeds: Vec<u64>, opts: ResetOptions },
    Step { actions: Vec<f64> },
}

struct Reply {
    obs: Vec<f32>,
    state: Vec<f32>,
    steps: Vec<Option<Step>>,
    error: Option<(usize, EnvError)>,
    /// The command's input buffer, returned for reuse.
    input: Vec<f64>,
    seeds: Vec<u64>,
}

struct Worker {
    first: usize,
    count: usize,
    tx: Sender<(Cmd, Reply)>,
    rx: Receiver<Reply>,
    spare: Option<Reply>,
    handle: Option<JoinHandle<()>>,
}

/// A vector of environments on `threads` worker threads.
pub struct VecEnv {
    n_envs: usize,
    n_agents: usize,
    obs_dim: usize,
    state_dim: usize,
    workers: Vec<Worker>,
    obs: Vec<f32>,
    state: Vec<f32>,
    steps: Vec<Option<Step>>,
}

impl VecEnv {
    /// Moves `envs` (all of the same task) onto `threads` workers (at least 1, at most one per env).
    pub fn new(envs: Vec<VoltageEnv>, threads: usize) -> VecEnv {
        assert!(!envs.is_empty(), "VecEnv needs at least one environment");
        let n_envs = envs.len();
        let (n_agents, obs_dim, state_dim) = (envs[0].n_agents(), envs[0].obs_dim(), envs[0].state_dim());
        let threads = threads.clamp(1, n_envs);
        let chunk = n_envs.div_ceil(threads);
        let mut workers = Vec::new();
        let mut it = envs.into_iter();
        let mut first = 0;
        while first < n_envs {
            let mine: Vec<VoltageEnv> = it.by_ref().take(chunk).collect();
            let count = mine.len();
            let (tx, crx) = bounded::<(Cmd, Reply)>(1);
            let (ctx, rx) = bounded::<Reply>(1);
            let handle = std::thread::spawn(move || worker_loop(mine, crx, ctx));
            let spare = Reply {
                obs: vec![0.0; count * n_agents * obs_dim],
                state: vec![0.0; count * state_dim],
                steps: vec![None; count],
                error: None,
                input: Vec::with_capacity(count * n_agents),
                seeds: Vec::with_capacity(count),
            };
            workers.push(Worker { first, count, tx, rx, spare: Some(spare), handle: Some(handle) });
            first += count;
        }
        VecEnv {
            n_envs,
            n_agents,
            obs_dim,
            state_dim,
            workers,
            obs: vec![0.0; n_envs * n_agents * obs_dim],
            state: vec![0.0; n_envs * state_dim],
            steps: vec![None; n_envs],
        }
    }

    pub fn len(&self) -> usize {
        self.n_envs
    }
    pub fn is_empty(&self) -> bool {
        self.n_envs == 0
    }
    pub fn n_agents(&self) -> usize {
        self.n_agents
    }
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    pub fn state_dim(&self) -> usize {
        self.state_dim
    }
    /// `n_envs × n_agents × obs_dim`, row-major.
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }
    /// `n_envs × state_dim`, row-major.
    pub fn states(&self) -> &[f32] {
        &self.state
    }
    /// Results of the last step, per environment.
    pub fn steps(&self) -> &[Option<Step>] {
        &self.steps
    }

    /// Resets every environment, env `i` with `seeds[i]`.
    pub fn reset(&mut self, seeds: &[u64], opts: &ResetOptions) -> Result<(), EnvError> {
        assert_eq!(seeds.len(), self.n_envs, "one seed per environment");
        for w in &mut self.workers {
            let mut r = w.spare.take().expect("worker reply buffer");
            r.seeds.clear();
            r.seeds.extend_from_slice(&seeds[w.first..w.first + w.count]);
            let s = std::mem::take(&mut r.seeds);
            w.tx.send((Cmd::Reset { seeds: s, opts: *opts }, r)).expect("worker alive");
        }
        self.collect()
    }

    /// Steps every environment; `actions` is `n_envs × n_agents`, row-major.
    pub fn step(&mut self, actions: &[f64]) -> Result<(), EnvError> {
        let a = self.n_agents;
        if actions.len() != self.n_envs * a {
            return Err(EnvError::ActionCount { expected: self.n_envs * a, got: actions.len() });
        }
        for w in &mut self.workers {
            let mut r = w.spare.take().expect("worker reply buffer");
            r.input.clear();
            r.input.extend_from_slice(&actions[w.first * a..(w.first + w.count) * a]);
            let input = std::mem::take(&mut r.input);
            w.tx.send((Cmd::Step { actions: input }, r)).expect("worker alive");
        }
        self.collect()
    }

    fn collect(&mut self) -> Result<(), EnvError> {
        let (od, sd) = (self.n_agents * self.obs_dim, self.state_dim);
        let mut first_err = None;
        for w in &mut self.workers {
            let r = w.rx.recv().expect("worker alive");
            self.obs[w.first * od..(w.first + w.count) * od].copy_from_slice(&r.obs);
            self.state[w.first * sd..(w.first + w.count) * sd].copy_from_slice(&r.state);
            self.steps[w.first..w.first + w.count].copy_from_slice(&r.steps);
            if first_err.is_none() {
                if let Some((i, e)) = &r.error {
                    first_err = Some((w.first + i, e.clone()));
                }
            }
            w.spare = Some(r);
        }
        match first_err {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for VecEnv {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing the command channel ends the worker loop.
            let (dead_tx, _) = bounded(0);
            drop(std::mem::replace(&mut w.tx, dead_tx));
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn worker_loop(mut envs: Vec<VoltageEnv>, rx: Receiver<(Cmd, Reply)>, tx: Sender<Reply>) {
    while let Ok((cmd, mut reply)) = rx.recv() {
        reply.error = None;
        let od = envs[0].n_agents() * envs[0].obs_dim();
        let sd = envs[0].state_dim();
        let a = envs[0].n_agents();
        match cmd {
            Cmd::Reset { seeds, opts } => {
                for (i, env) in envs.iter_mut().enumerate() {
                    if let Err(e) = env.reset(seeds[i], &opts) {
                        reply.error.get_or_insert((i, e));
                    }
                    reply.steps[i] = None;
                }
                reply.seeds = seeds;
            }
            Cmd::Step { actions } => {
                for (i, env) in envs.iter_mut().enumerate() {
                    match env.step(&actions[i * a..(i + 1) * a]) {
                        Ok(s) => reply.steps[i] = Some(s),
                        Err(e) => {
                            reply.steps[i] = None;
                            reply.error.get_or_insert((i, e));
                        }
                    }
                }
                reply.input = actions;
            }
        }
        for (i, env) in envs.iter().enumerate() {
            reply.obs[i * od..(i + 1) * od].copy_from_slice(env.observations());
            reply.state[i * sd..(i + 1) * sd].copy_from_slice(env.state());
        }
        if tx.send(reply).is_err() {
            return;
        }
    }
}
