//! The training loop shared by MADDPG and MATD3: explore in the environment, store transitions,
//! update, evaluate on held-out days, checkpoint. Deterministic for a given config and seed
//! (one intra-op thread, seeded environment, exploration, sampling and network initialisation).
//! What a run is configured with ([`TrainConfig`], [`Algorithm`]) is [`crate::config`],
//! re-exported here.

pub use crate::config::{Algorithm, TrainConfig};
use crate::buffer::ReplayBuffer;
use crate::checkpoint::{CheckpointError, Reader, Writer};
use crate::validate::ConfigError;
use crate::config::WarmupActions;
use crate::normalize::Normalizer;
use crate::maddpg::Maddpg;
use crate::matd3::{Matd3, UpdateInfo};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use voltarena_env::deploy::{ActionPipeline, Deployed};
use voltarena_env::{Controller, MetricsSummary, ResetOptions, Split, Task, VoltageEnv};

/// The learner behind a run.
pub enum Learner {
    Matd3(Box<Matd3>),
    Maddpg(Box<Maddpg>),
}

impl Learner {
    pub fn new(cfg: &TrainConfig, n_agents: usize, obs_dim: usize, state_dim: usize) -> Result<Learner, tch::TchError> {
        Ok(match cfg.algorithm {
            Algorithm::Matd3 => Learner::Matd3(Box::new(Matd3::new(cfg.matd3.clone(), n_agents, obs_dim, state_dim, cfg.seed ^ 0x7A26E7)?)),
            Algorithm::Maddpg => Learner::Maddpg(Box::new(Maddpg::new(cfg.maddpg.clone(), n_agents, obs_dim, state_dim, cfg.seed ^ 0x7A26E7)?)),
        })
    }
    /// Deterministic actions of a feed-forward actor.
    pub fn act(&self, obs: &[f32], n_agents: usize, out: &mut [f64]) {
        self.act_hidden(obs, n_agents, out, &mut [])
    }
    /// Deterministic actions; with the recurrent actor `obs` rows are [o ‖ h] and the next hidden
    /// state is written to `h_next`.
    pub fn act_hidden(&self, obs: &[f32], n_agents: usize, out: &mut [f64], h_next: &mut [f32]) {
        match self {
            Learner::Matd3(l) => l.act_hidden(obs, n_agents, out, h_next),
            Learner::Maddpg(l) => l.act_hidden(obs, n_agents, out, h_next),
        }
    }
    /// Width of the actor's recurrent state (0: feed-forward).
    pub fn hidden_dim(&self) -> usize {
        match self {
            Learner::Matd3(l) => l.hidden_dim(),
            Learner::Maddpg(l) => l.hidden_dim(),
        }
    }
    /// Acts for one joint observation, keeping the recurrent state in `hidden` (a no-op wrapper for
    /// the feed-forward actor); `aug` receives the actor's input.
    pub fn act_stateful(&self, obs: &[f32], n_agents: usize, out: &mut [f64], hidden: &mut crate::nets::Hidden, aug: &mut Vec<f32>) {
        if hidden.dim == 0 {
            self.act(obs, n_agents, out);
            return;
        }
        crate::nets::Hidden::augment(obs, &hidden.h, hidden.dim, aug);
        self.act_hidden(aug, n_agents, out, &mut hidden.next);
        hidden.commit();
    }
    pub fn update(&mut self, b: &crate::buffer::Batch) -> UpdateInfo {
        match self {
            Learner::Matd3(l) => l.update(b),
            Learner::Maddpg(l) => l.update(b),
        }
    }
    pub fn gamma(&self) -> f64 {
        match self {
            Learner::Matd3(l) => l.cfg.gamma,
            Learner::Maddpg(l) => l.cfg.gamma,
        }
    }
    pub fn batch_size(&self) -> usize {
        match self {
            Learner::Matd3(l) => l.cfg.batch_size,
            Learner::Maddpg(l) => l.cfg.batch_size,
        }
    }
    pub fn updates(&self) -> usize {
        match self {
            Learner::Matd3(l) => l.updates(),
            Learner::Maddpg(l) => l.updates(),
        }
    }
    pub fn save(&self, dir: &Path) -> Result<(), tch::TchError> {
        match self {
            Learner::Matd3(l) => l.save(dir),
            Learner::Maddpg(l) => l.save(dir),
        }
    }
    pub fn load(&mut self, dir: &Path, updates: usize) -> Result<(), tch::TchError> {
        match self {
            Learner::Matd3(l) => l.load(dir, updates),
            Learner::Maddpg(l) => l.load(dir, updates),
        }
    }
    /// The actor alone (a deployed policy's checkpoint).
    pub fn save_actor(&self, dir: &Path) -> Result<(), tch::TchError> {
        match self {
            Learner::Matd3(l) => l.save_actor(dir),
            Learner::Maddpg(l) => l.save_actor(dir),
        }
    }
    pub fn load_actor(&mut self, dir: &Path) -> Result<(), tch::TchError> {
        match self {
            Learner::Matd3(l) => l.load_actor(dir),
            Learner::Maddpg(l) => l.load_actor(dir),
        }
    }
    /// Optimiser moments, update count and random streams (the networks are in the `.ot` files).
    pub fn write_state(&self, w: &mut Writer) {
        match self {
            Learner::Matd3(l) => l.write_state(w),
            Learner::Maddpg(l) => l.write_state(w),
        }
    }
    pub fn read_state(&mut self, r: &mut Reader) -> Result<(), CheckpointError> {
        match self {
            Learner::Matd3(l) => l.read_state(r),
            Learner::Maddpg(l) => l.read_state(r),
        }
    }
}

/// Training progress that a checkpoint stores next to the networks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub step: usize,
    pub episode: usize,
    pub updates: usize,
}

/// What the loop reports.
pub trait Logger {
    /// An environment step was taken (for progress bars).
    fn step(&mut self, _step: usize) {}
    /// A training episode ended.
    fn train_episode(&mut self, step: usize, episode: usize, ret: f64, summary: &MetricsSummary);
    fn update(&mut self, step: usize, info: &UpdateInfo);
    fn eval(&mut self, step: usize, mean_return: f64, summary: &MetricsSummary);
    /// Called after every evaluation, every `checkpoint_every` steps, whenever
    /// [`checkpoint_due`](Self::checkpoint_due) says so, and at the end; the logger saves the
    /// trainer (and the best policy so far, judged on the last evaluation).
    fn checkpoint(&mut self, trainer: &Trainer) -> Result<(), String>;
    /// Asked after every step: checkpoint now, whatever `checkpoint_every` says (e.g. on a wall-time
    /// cadence). A checkpoint never changes the run's numbers.
    fn checkpoint_due(&mut self, _step: usize) -> bool {
        false
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("task: {0}")]
    Task(#[from] voltarena_env::TaskError),
    #[error("environment: {0}")]
    Env(#[from] voltarena_env::EnvError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Deploy(#[from] voltarena_env::deploy::DeployError),
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: std::path::PathBuf, message: String },
    /// The logger could not write a checkpoint or a result.
    #[error("{0}")]
    Log(String),
}

pub struct Trainer {
    pub cfg: TrainConfig,
    pub task: Arc<Task>,
    env: VoltageEnv,
    pub learner: Learner,
    buffer: ReplayBuffer,
    /// Scratch: each inverter's action range in force after a step (Mvar per unit of action).
    q_range: Vec<f64>,
    rng: ChaCha8Rng,
    pub progress: Progress,
    /// Dead zone and safety layer between the (exploring) actor and the grid: the same pipeline
    /// the deployed policy acts through.
    pipeline: ActionPipeline,
    /// Steps where the safety layer changed the training action, and where it could not meet
    /// every linearised constraint (cumulative).
    pub safety_interventions: usize,
    pub safety_infeasible: usize,
    /// The actor's (exploring) actions, before the dead zone.
    policy_actions: Vec<f64>,
    /// Running normalisation (identity unless `normalize_obs` / `normalize_reward`).
    pub norm: Normalizer,
    /// Recurrent actor state while acting (dim 0 for the feed-forward actor).
    hidden: crate::nets::Hidden,
    /// The training episode in progress.
    ep: EpisodeState,
    /// The replay segments the buffer still needs (resumable checkpoints).
    segments: std::cell::RefCell<Segments>,
    aug: Vec<f32>,
    next_aug: Vec<f32>,
    // scratch
    obs: Vec<f32>,
    obs_n: Vec<f32>,
    state: Vec<f32>,
    actions: Vec<f64>,
    actions_f32: Vec<f32>,
}

/// Where the training loop stands in its episode: what a resumable checkpoint needs to put the
/// environment back (it is re-stepped with the applied actions from the episode's reset).
#[derive(Debug, Clone, Default)]
struct EpisodeState {
    /// An episode was reset and has not been logged yet.
    active: bool,
    /// Its last step was taken (terminated, truncated or the budget reached); it is logged next.
    pending_end: bool,
    /// Return so far.
    ret: f64,
    /// The actions the grid got at each step so far (steps × agents).
    applied: Vec<f64>,
}

/// One replay segment file of `RUN_DIR/replay/`: transitions `a..b` and its SHA-256.
#[derive(Debug, Clone, PartialEq)]
struct SegmentRef {
    a: u64,
    b: u64,
    sha256: String,
}

impl SegmentRef {
    fn file_name(&self) -> String {
        format!("{:012}-{:012}.bin", self.a, self.b)
    }
}

#[derive(Debug, Default)]
struct Segments {
    /// Segments the latest checkpoint lists.
    list: Vec<SegmentRef>,
    /// File names the checkpoint before it listed (kept until a newer checkpoint is committed).
    previous: Vec<String>,
}

/// Seed of training episode `e` of a run with seed `seed` (every episode a different,
/// reproducible start; the environment is reset with it on the training split).
pub fn episode_seed(seed: u64, e: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(e as u64)
}

impl Trainer {
    /// Validates the config, builds the task, the networks and the pipeline; nothing is written.
    pub fn new(cfg: TrainConfig) -> Result<Trainer, TrainError> {
        crate::numerics::pin();
        cfg.validate()?;
        let mut task = Task::load(&cfg.task)?;
        if let Some(r) = &cfg.reward {
            let mut spec = task.spec.clone();
            spec.reward = r.clone();
            let dir = std::path::Path::new(&task.source).parent().filter(|d| d.is_dir()).map(|d| d.to_path_buf());
            task = Task::build(spec, &task.source, dir.as_deref())?;
        }
        let task = Arc::new(task);
        let env = VoltageEnv::new(task.clone())?;
        let pipeline = ActionPipeline::new(&task, cfg.deployment())?;
        let (n, od, sd) = (env.n_agents(), env.obs_dim(), env.state_dim());
        tch::set_num_threads(cfg.torch_threads as i32);
        let learner = {
            // The networks are initialised from libtorch's process-global generator.
            let _g = torch_init_lock();
            tch::manual_seed(cfg.seed as i64);
            Learner::new(&cfg, n, od, sd)?
        };
        let norm = Normalizer::new(cfg.normalize_obs, cfg.normalize_reward, od, sd, learner.gamma());
        let hd = learner.hidden_dim();
        if hd > 0 && cfg.normalize_obs {
            return Err(ConfigError::new("normalize_obs", "false with a recurrent actor (matd3/maddpg.actor_gru)", "true").into());
        }
        let mut learner = learner;
        if let Learner::Matd3(m) = &mut learner {
            if cfg.analytic_q_cost {
                m.set_action_cost(Some(crate::matd3::ActionCost { weight: task.spec.reward.q_weight * cfg.matd3.reward_scale, dead_zone: cfg.action_dead_zone, scale: cfg.action_scale, residual: cfg.residual }));
                if cfg.residual == voltarena_env::deploy::Residual::Droop {
                    m.set_budget_gain(1.0 / voltarena_env::deploy::RESIDUAL_DROOP_SMOOTHING);
                }
            }
        }
        let mut buffer = if cfg.analytic_q_cost { ReplayBuffer::with_cost(cfg.buffer_size, n, od + hd, sd) } else { ReplayBuffer::new(cfg.buffer_size, n, od + hd, sd) };
        if cfg.algorithm == crate::config::Algorithm::Matd3 && cfg.matd3.q_budget_reference == crate::matd3::BudgetReference::DroopTarget {
            buffer = buffer.keep_droop_target();
        }
        Ok(Trainer {
            pipeline,
            safety_interventions: 0,
            safety_infeasible: 0,
            policy_actions: vec![0.0; n],
            buffer,
            q_range: vec![0.0; n],
            hidden: crate::nets::Hidden::new(n, hd),
            ep: EpisodeState { applied: Vec::with_capacity((task.spec.episode_steps + 1) * n), ..Default::default() },
            segments: Default::default(),
            aug: Vec::new(),
            next_aug: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xE8_9107_A710),
            progress: Progress { step: 0, episode: 0, updates: 0 },
            obs: vec![0.0; n * od],
            obs_n: vec![0.0; n * od],
            norm,
            state: vec![0.0; sd],
            actions: vec![0.0; n],
            actions_f32: vec![0.0; n],
            cfg,
            task,
            env,
            learner,
        })
    }

    /// Restores a run from a checkpoint folder written by [`save_resumable`](Self::save_resumable)
    /// (`replay_dir` holds its replay segments): the next step is the one the uninterrupted run took,
    /// bit for bit. Returns the logger's state stored with it. A folder without a manifest (written
    /// before checkpoints were resumable) restores networks and progress only (`Ok(None)`): the
    /// optimiser moments and the replay buffer start afresh, and the run continues without
    /// reproducing the uninterrupted one.
    pub fn resume(&mut self, dir: &Path, replay_dir: &Path) -> Result<Option<Vec<u8>>, TrainError> {
        let bad = |message: String| TrainError::Checkpoint { path: dir.to_path_buf(), message };
        let resumable = crate::checkpoint::verify_manifest(dir).map_err(|e| bad(e.to_string()))? && dir.join("resume.bin").exists();
        let text = std::fs::read_to_string(dir.join("progress.json")).map_err(|e| bad(format!("progress.json: {e}")))?;
        let p: Progress = serde_json::from_str(&text).map_err(|e| bad(format!("progress.json: {e}")))?;
        self.learner.load(dir, p.updates).map_err(|e| bad(e.to_string()))?;
        if !resumable {
            if !self.norm.is_identity() {
                self.norm = Normalizer::load(dir).map_err(bad)?;
            }
            self.progress = p;
            self.rng = ChaCha8Rng::seed_from_u64((self.cfg.seed ^ 0xE8_9107_A710).wrapping_add(p.step as u64));
            return Ok(None);
        }
        let path = dir.join("resume.bin");
        let bytes = std::fs::read(&path).map_err(|e| bad(format!("resume.bin: {e}")))?;
        let logger = self.read_resume(&path, &bytes, replay_dir).map_err(bad_ck)?;
        if self.progress != p {
            return Err(bad(format!("progress.json says {p:?}, resume.bin {:?}", self.progress)));
        }
        // Put the environment back where the episode stood: the same reset, the same actions.
        if self.ep.active {
            let opts = ResetOptions { split: Split::Train, ..Default::default() };
            self.env.reset(episode_seed(self.cfg.seed, self.progress.episode), &opts)?;
            self.pipeline.reset();
            let n = self.env.n_agents();
            for row in self.ep.applied.chunks_exact(n) {
                // The pipeline's own state (droop's setpoint under `residual = "droop_offset"`)
                // follows the same steps.
                self.pipeline.advance_base(&self.env);
                self.env.step(row)?;
            }
        }
        Ok(Some(logger))
    }

    fn read_resume(&mut self, path: &Path, bytes: &[u8], replay_dir: &Path) -> Result<Vec<u8>, CheckpointError> {
        let mut r = Reader::open(path, bytes, crate::checkpoint::MAGIC)?;
        let fmt = |m: String| CheckpointError::format(path, m);
        let (n, od, sd) = (self.env.n_agents(), self.env.obs_dim(), self.env.state_dim());
        for (d, what) in [(n, "number of agents"), (od, "observation width"), (sd, "state width"), (self.hidden.dim, "recurrent state width")] {
            let got = r.usize(what)?;
            if got != d {
                return Err(fmt(format!("{what} {got}, this run's config gives {d}")));
            }
        }
        self.progress = Progress { step: r.usize("step")?, episode: r.usize("episode")?, updates: r.usize("updates")? };
        self.rng = r.chacha("training random stream")?;
        self.learner.read_state(&mut r)?;
        if self.learner.updates() != self.progress.updates {
            return Err(fmt(format!("{} learner updates, progress says {}", self.learner.updates(), self.progress.updates)));
        }
        self.norm.read(&mut r)?;
        self.safety_interventions = r.usize("safety interventions")?;
        self.safety_infeasible = r.usize("safety infeasible steps")?;
        let groups = r.usize("safety warm-start groups")?;
        let mut warm = Vec::new();
        for _ in 0..groups.min(1 << 20) {
            let k = r.usize("safety warm-start rows")?;
            let mut g = Vec::new();
            for _ in 0..k.min(1 << 20) {
                g.push((r.usize("warm-start bus")?, r.bool("warm-start side")?));
            }
            warm.push(g);
        }
        self.pipeline.safety_mut().set_warm_start(warm).map_err(fmt)?;
        // The episode in progress.
        self.ep.active = r.bool("episode active")?;
        self.ep.pending_end = r.bool("episode ending")?;
        self.ep.ret = r.f64("episode return")?;
        let applied = r.f64s("applied actions")?;
        if applied.len() % n != 0 || applied.len() / n > self.task.spec.episode_steps + 1 {
            return Err(fmt(format!("{} applied actions is not a number of steps of {n} agents", applied.len())));
        }
        self.ep.applied.clear();
        self.ep.applied.extend_from_slice(&applied);
        let h = r.f32s("recurrent state")?;
        if h.len() != self.hidden.h.len() {
            return Err(fmt(format!("recurrent state of {} values, expected {}", h.len(), self.hidden.h.len())));
        }
        self.hidden.h.copy_from_slice(&h);
        // The replay buffer, from the segments it lists.
        let pushed = r.u64("transitions pushed")?;
        let k = r.usize("replay segments")?;
        let mut list = Vec::new();
        for _ in 0..k.min(1 << 20) {
            list.push(SegmentRef { a: r.u64("segment start")?, b: r.u64("segment end")?, sha256: r.str("segment checksum")? });
        }
        let logger = r.bytes("logger state")?.to_vec();
        r.end()?;
        let keep_from = pushed.saturating_sub(self.buffer.capacity() as u64);
        let mut covered = keep_from;
        for seg in &list {
            if seg.a > covered || seg.b <= seg.a {
                return Err(fmt(format!("replay segments do not cover transitions {covered}..{pushed} (next segment {}..{})", seg.a, seg.b)));
            }
            let p = replay_dir.join(seg.file_name());
            let b = std::fs::read(&p).map_err(|e| CheckpointError::Io { path: p.clone(), source: e })?;
            if crate::checkpoint::sha256_hex(&b) != seg.sha256 {
                return Err(CheckpointError::format(&p, "SHA-256 differs from the checkpoint's (corrupted or from another run)"));
            }
            let range = self.buffer.decode_segment(&p, &b, keep_from)?;
            if range != (seg.a, seg.b) {
                return Err(CheckpointError::format(&p, format!("holds transitions {}..{}, the checkpoint expects {}..{}", range.0, range.1, seg.a, seg.b)));
            }
            covered = covered.max(seg.b);
        }
        if covered != pushed {
            return Err(fmt(format!("replay segments end at transition {covered}, the buffer had {pushed}")));
        }
        self.buffer.set_pushed(pushed);
        // Segments a killed run wrote after this checkpoint are not this run's future: remove them.
        let names: Vec<String> = list.iter().map(SegmentRef::file_name).collect();
        remove_other_segments(replay_dir, &names);
        *self.segments.borrow_mut() = Segments { previous: names, list };
        Ok(logger)
    }

    /// The replay buffer (read-only: for tests and diagnostics).
    pub fn buffer(&self) -> &ReplayBuffer {
        &self.buffer
    }

    /// Networks (all four, or the actor alone), `normalizer.json` and `progress.json`.
    fn save_networks(&self, dir: &Path, actor_only: bool) -> Result<(), String> {
        if actor_only { self.learner.save_actor(dir) } else { self.learner.save(dir) }.map_err(|e| e.to_string())?;
        if !self.norm.is_identity() {
            self.norm.save(dir)?;
        }
        let p = serde_json::to_string(&self.progress).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("progress.json"), p).map_err(|e| e.to_string())
    }

    /// Writes the policy — the actor, normaliser, progress and the manifest: what evaluation reads
    /// (a few tens of kB) — into `dir` (the caller makes the swap atomic). `best/` and a leaderboard
    /// entry's final checkpoint are such folders.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        self.save_networks(dir, true)?;
        crate::checkpoint::write_manifest(dir).map_err(|e| e.to_string())
    }

    /// Writes a resumable checkpoint into `dir` (the caller makes the swap atomic): all four networks,
    /// normaliser, progress, `resume.bin` with `logger` (the logger's own state) and the manifest; and
    /// the replay transitions since the previous checkpoint as a new segment in `replay_dir`.
    /// Segments no checkpoint needs any more are removed one checkpoint later (the folder being
    /// replaced may still list them).
    pub fn save_resumable(&self, dir: &Path, replay_dir: &Path, logger: &[u8]) -> Result<(), String> {
        self.save_networks(dir, false)?;
        let mut segs = self.segments.borrow_mut();
        let first = self.buffer.first_kept();
        let a = segs.list.last().map(|s| s.b).unwrap_or(0).max(first);
        let b = self.buffer.pushed();
        if b > a {
            std::fs::create_dir_all(replay_dir).map_err(|e| format!("{}: {e}", replay_dir.display()))?;
            let bytes = self.buffer.encode_segment(a, b);
            let seg = SegmentRef { a, b, sha256: crate::checkpoint::sha256_hex(&bytes) };
            let p = replay_dir.join(seg.file_name());
            crate::checkpoint::write_atomic(&p, &bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            segs.list.push(seg);
        }
        segs.list.retain(|s| s.b > first);
        let mut w = Writer::default();
        w.buf.extend_from_slice(crate::checkpoint::MAGIC);
        w.u32(crate::checkpoint::FORMAT_VERSION);
        for d in [self.env.n_agents(), self.env.obs_dim(), self.env.state_dim(), self.hidden.dim] {
            w.usize(d);
        }
        for v in [self.progress.step, self.progress.episode, self.progress.updates] {
            w.usize(v);
        }
        w.chacha(&self.rng);
        self.learner.write_state(&mut w);
        self.norm.write(&mut w);
        w.usize(self.safety_interventions);
        w.usize(self.safety_infeasible);
        let warm = self.pipeline.safety().warm_start();
        w.usize(warm.len());
        for g in warm {
            w.usize(g.len());
            for &(bus, upper) in g {
                w.usize(bus);
                w.bool(upper);
            }
        }
        w.bool(self.ep.active);
        w.bool(self.ep.pending_end);
        w.f64(self.ep.ret);
        w.f64s(&self.ep.applied);
        w.f32s(&self.hidden.h);
        w.u64(b);
        w.usize(segs.list.len());
        for s in &segs.list {
            w.u64(s.a);
            w.u64(s.b);
            w.str(&s.sha256);
        }
        w.bytes(logger);
        std::fs::write(dir.join("resume.bin"), w.finish()).map_err(|e| format!("{}: {e}", dir.join("resume.bin").display()))?;
        crate::checkpoint::write_manifest(dir).map_err(|e| e.to_string())?;
        let names: Vec<String> = segs.list.iter().map(SegmentRef::file_name).collect();
        let keep: Vec<String> = names.iter().chain(&segs.previous).cloned().collect();
        remove_other_segments(replay_dir, &keep);
        segs.previous = names;
        Ok(())
    }

    fn sigma(&self, step: usize) -> f64 {
        let c = &self.cfg;
        let f = (step as f64 / c.explore_decay_steps.max(1) as f64).min(1.0);
        c.explore_sigma_start + f * (c.explore_sigma_end - c.explore_sigma_start)
    }

    /// Runs until `total_steps` (from where [`resume`](Self::resume) put it, or from the start).
    pub fn run(&mut self, log: &mut dyn Logger) -> Result<(), TrainError> {
        let n = self.env.n_agents();
        let normal = Normal::new(0.0, 1.0).expect("unit normal");
        let train_opts = ResetOptions { split: Split::Train, ..Default::default() };
        loop {
            if !self.ep.active {
                if self.progress.step >= self.cfg.total_steps {
                    break;
                }
                self.env.reset(episode_seed(self.cfg.seed, self.progress.episode), &train_opts)?;
                self.pipeline.reset();
                self.ep.active = true;
                self.ep.pending_end = false;
                self.ep.ret = 0.0;
                self.ep.applied.clear();
                self.hidden.reset();
            }
            while !self.ep.pending_end {
                self.obs.copy_from_slice(self.env.observations());
                self.state.copy_from_slice(self.env.state());
                self.norm.observe(&self.obs, &self.state);
                let step = self.progress.step;
                if self.hidden.dim > 0 {
                    // The recurrent actor runs at every step (also during the random warm-up) so
                    // that its state follows the episode; `aug` = [o ‖ h] is what the buffer keeps.
                    self.learner.act_stateful(&self.obs, n, &mut self.actions, &mut self.hidden, &mut self.aug);
                }
                if step < self.cfg.learning_starts && self.cfg.warmup_actions == WarmupActions::Uniform {
                    for a in self.actions.iter_mut() {
                        *a = rand::RngExt::random_range(&mut self.rng, -1.0..=1.0);
                    }
                } else {
                    if self.hidden.dim == 0 {
                        self.obs_n.copy_from_slice(&self.obs);
                        self.norm.obs(&mut self.obs_n);
                        self.learner.act(&self.obs_n, n, &mut self.actions);
                    }
                    let sigma = self.sigma(step);
                    for a in self.actions.iter_mut() {
                        *a = (*a + sigma * normal.sample(&mut self.rng)).clamp(-1.0, 1.0);
                    }
                }
                // The dead zone (if any) maps the actor's action to the grid's; the safety layer
                // (if any) corrects it before it reaches the grid.
                self.policy_actions.copy_from_slice(&self.actions);
                let info = self.pipeline.apply(&self.env, &self.policy_actions, &mut self.actions);
                self.safety_interventions += info.intervened as usize;
                self.safety_infeasible += info.infeasible as usize;
                let s = self.env.step(&self.actions)?;
                self.ep.ret += s.reward;
                self.ep.applied.extend_from_slice(&self.actions);
                self.norm.observe_reward(s.reward, s.terminated || s.truncated);
                // The buffer keeps actor actions: the actor's own, or (filtered) one that the dead
                // zone maps to the action the layer applied.
                let d = self.cfg.action_dead_zone;
                for k in 0..n {
                    let (applied, proposed, own) = (self.actions[k], self.pipeline.proposal()[k], self.policy_actions[k]);
                    let a = if !self.cfg.store_filtered_action || applied == proposed { own } else { voltarena_env::deploy::dead_zone_preimage(d, applied) };
                    self.actions_f32[k] = a as f32;
                }
                if self.hidden.dim > 0 {
                    crate::nets::Hidden::augment(self.env.observations(), &self.hidden.h, self.hidden.dim, &mut self.next_aug);
                    self.buffer.push(&self.aug, &self.state, &self.actions_f32, s.reward as f32, &self.next_aug, self.env.state(), s.terminated);
                } else {
                    self.buffer.push(&self.obs, &self.state, &self.actions_f32, s.reward as f32, self.env.observations(), self.env.state(), s.terminated);
                }
                if self.buffer.has_cost() {
                    for (k, r) in self.q_range.iter_mut().enumerate() {
                        *r = self.env.q_range_in_force(k);
                    }
                    let continues = self.ep.applied.len() > n;
                    self.buffer.push_cost(self.pipeline.base(), &self.q_range, continues);
                    self.buffer.push_droop_target(self.pipeline.droop_target());
                }
                self.progress.step += 1;
                log.step(self.progress.step);
                let step = self.progress.step;
                if step >= self.cfg.learning_starts && step % self.cfg.update_every == 0 && self.buffer.len() >= self.learner.batch_size() {
                    for _ in 0..self.cfg.updates_per_round {
                        let b = self.buffer.sample_normalized(self.learner.batch_size(), &mut self.rng, &self.norm);
                        let info = self.learner.update(&b);
                        self.progress.updates = self.learner.updates();
                        log.update(step, &info);
                    }
                }
                self.ep.pending_end = s.terminated || s.truncated || step >= self.cfg.total_steps;
                let evaluated = self.cfg.eval_every > 0 && step % self.cfg.eval_every == 0;
                if evaluated {
                    let (r, m) = self.evaluate(Split::Val, self.cfg.eval_episodes, 10_000)?;
                    log.eval(step, r, &m);
                }
                // Every evaluation is followed by a checkpoint, where the logger keeps the best
                // policy: an evaluation between two `checkpoint_every` steps is a candidate too.
                if evaluated || (self.cfg.checkpoint_every > 0 && step % self.cfg.checkpoint_every == 0) || log.checkpoint_due(step) {
                    log.checkpoint(self).map_err(TrainError::Log)?;
                }
            }
            let summary = self.env.episode_metrics().summary(&self.task.bus_id);
            log.train_episode(self.progress.step, self.progress.episode, self.ep.ret, &summary);
            self.closed_loop_budget_step()?;
            self.progress.episode += 1;
            self.ep.active = false;
            self.ep.pending_end = false;
        }
        log.checkpoint(self).map_err(TrainError::Log)?;
        Ok(())
    }

    /// `matd3.q_budget_reference = "droop_alone"`: the reactive-power budget's dual step after a
    /// training episode, once the actor learns ([`Matd3::closed_loop_dual_step`](crate::matd3::Matd3::closed_loop_dual_step)
    /// on [`budget_measurement`](Self::budget_measurement) of the episode's day).
    fn closed_loop_budget_step(&mut self) -> Result<(), TrainError> {
        let c = &self.cfg.matd3;
        if self.cfg.algorithm != crate::config::Algorithm::Matd3 || c.q_budget_reference != crate::matd3::BudgetReference::DroopAlone {
            return Ok(());
        }
        if self.learner.updates() <= c.actor_warmup {
            return Ok(());
        }
        let (policy, droop) = self.budget_measurement(self.progress.episode)?;
        if let Learner::Matd3(m) = &mut self.learner {
            m.closed_loop_dual_step(policy, droop);
        }
        Ok(())
    }

    /// Reactive power (QL, Mvar: mean |q| over inverters and steps) of the deterministic policy
    /// and of droop alone, each in closed loop on the day of training episode `episode` (its reset
    /// seed, without data noise), through the run's deployment: what
    /// `q_budget_reference = "droop_alone"` compares.
    pub fn budget_measurement(&mut self, episode: usize) -> Result<(f64, f64), TrainError> {
        let seed = episode_seed(self.cfg.seed, episode);
        let (_, policy) = self.evaluate(Split::Train, 1, seed)?;
        let mut droop = Deployed::new(Box::new(voltarena_env::controller::NoControl), &self.task, self.cfg.deployment())?;
        let (_, alone) = evaluate(&self.task, &mut droop, Split::Train, 1, seed)?;
        Ok((policy.ql, alone.ql))
    }

    /// Mean return and metrics of the deterministic policy on `episodes` episodes of `split`
    /// (seeds `seed_base + i`, the same episodes every time).
    pub fn evaluate(&mut self, split: Split, episodes: usize, seed_base: u64) -> Result<(f64, MetricsSummary), TrainError> {
        let acting = Acting::new(&self.learner, self.norm.clone(), self.env.n_agents());
        let greedy = Greedy { learner: &mut self.learner, acting };
        let mut deployed = Deployed::new(Box::new(greedy), &self.task, self.cfg.deployment())?;
        evaluate(&self.task, &mut deployed, split, episodes, seed_base)
    }
}

/// How a trained actor acts, shared by training-time evaluation and deployed policies
/// ([`crate::policy::RlPolicy`]): frozen observation normalisation and the recurrent state (reset
/// each episode). What happens between its actions and the grid (dead zone, safety layer) is the
/// run's [`Deployment`](voltarena_env::deploy::Deployment).
pub struct Acting {
    norm: Normalizer,
    hidden: crate::nets::Hidden,
    obs: Vec<f32>,
    aug: Vec<f32>,
}

impl Acting {
    pub fn new(learner: &Learner, norm: Normalizer, n_agents: usize) -> Acting {
        Acting { norm, hidden: crate::nets::Hidden::new(n_agents, learner.hidden_dim()), obs: Vec::new(), aug: Vec::new() }
    }
    /// Actions of the deterministic actor for the environment's current observations.
    pub fn act(&mut self, learner: &Learner, env: &VoltageEnv, actions: &mut [f64]) {
        self.obs.clear();
        self.obs.extend_from_slice(env.observations());
        self.norm.obs(&mut self.obs);
        learner.act_stateful(&self.obs, env.n_agents(), actions, &mut self.hidden, &mut self.aug);
    }
    /// A new episode: the recurrent state starts from zero.
    pub fn reset(&mut self) {
        self.hidden.reset();
    }
}

/// The learner's deterministic actor as a [`Controller`] (borrowed, for evaluation during training).
struct Greedy<'a> {
    /// `&mut` only because a [`Controller`] must be `Send` (the learner is not `Sync`).
    learner: &'a mut Learner,
    acting: Acting,
}

impl Controller for Greedy<'_> {
    fn name(&self) -> &str {
        "greedy"
    }
    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]) {
        self.acting.act(self.learner, env, actions);
    }
    fn reset(&mut self, _env: &VoltageEnv, _seed: u64) {
        self.acting.reset();
    }
}

/// Runs a deployed controller on `episodes` episodes of a split (seeds `seed_base + i`, no data
/// noise): mean return and aggregate metrics.
pub fn evaluate(task: &Arc<Task>, deployed: &mut Deployed, split: Split, episodes: usize, seed_base: u64) -> Result<(f64, MetricsSummary), TrainError> {
    let mut env = VoltageEnv::new(task.clone())?;
    let seeds: Vec<u64> = (0..episodes as u64).map(|i| seed_base + i).collect();
    let e = voltarena_env::deploy::evaluate(&mut env, deployed, split, &seeds, &mut |_, _, _| {})?;
    Ok((e.mean_return, e.metrics))
}

/// Removes the replay segment files of `dir` that `keep` does not name.
fn remove_other_segments(dir: &Path, keep: &[String]) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.ends_with(".bin") || name.contains(".tmp.")) && !keep.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn bad_ck(e: CheckpointError) -> TrainError {
    match e {
        CheckpointError::Io { path, source } => TrainError::Checkpoint { path, message: source.to_string() },
        CheckpointError::Format { path, message } => TrainError::Checkpoint { path, message },
    }
}

/// libtorch's random generator is process-global: network initialisation (seed, then build) takes
/// this lock, so that runs trained or loaded in parallel threads stay reproducible.
pub(crate) fn torch_init_lock() -> std::sync::MutexGuard<'static, ()> {
    crate::numerics::pin();
    static TORCH_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TORCH_INIT.lock().unwrap_or_else(|p| p.into_inner())
}
