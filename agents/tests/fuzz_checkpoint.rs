//! The resumable-checkpoint readers under the mutation fuzzer (grid/tests/fuzz/mod.rs): a real
//! checkpoint of a tiny run is mutated — `resume.bin` and the replay segments with their checksum
//! recomputed (so that the decoders themselves, not only the checksum, see the damage), and
//! `manifest.json` as text. Refusing is fine (an error naming the file); panicking is not.

#[path = "../../grid/tests/fuzz/mod.rs"]
mod fuzz;

use sha2::{Digest, Sha256};
use std::path::Path;
use voltarena_agents::train::{Logger, TrainConfig, Trainer};
use voltarena_env::MetricsSummary;

struct Quiet;
impl Logger for Quiet {
    fn train_episode(&mut self, _: usize, _: usize, _: f64, _: &MetricsSummary) {}
    fn update(&mut self, _: usize, _: &voltarena_agents::matd3::UpdateInfo) {}
    fn eval(&mut self, _: usize, _: f64, _: &MetricsSummary) {}
    fn checkpoint(&mut self, _: &Trainer) -> Result<(), String> {
        Ok(())
    }
}

/// A tiny run stopped mid-episode (300 steps: an episode is 240), and its resumable checkpoint.
fn checkpoint(dir: &Path) -> TrainConfig {
    let cfg: TrainConfig = toml::from_str(
        "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 3\ntotal_steps = 300\nlearning_starts = 100\nbuffer_size = 200\n\
         eval_every = 0\ncheckpoint_every = 0\nnormalize_obs = true\nnormalize_reward = true\n[matd3]\nbatch_size = 16\nactor_hidden = 8\ncritic_hidden = 8\n[safety]\nkind = \"projection\"\n",
    )
    .unwrap();
    let mut t = Trainer::new(cfg.clone()).unwrap();
    t.run(&mut Quiet).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    t.save_resumable(dir, &dir.join("replay"), b"logger state").unwrap();
    cfg
}

/// `body ‖ SHA-256(body)` for a mutated body.
fn reseal(mutant: &[u8]) -> Vec<u8> {
    let mut v = mutant.to_vec();
    let d = Sha256::digest(&v);
    v.extend_from_slice(&d);
    v
}

#[test]
fn resumable_checkpoint_readers_never_panic() {
    let dir = std::env::temp_dir().join(format!("va-fuzz-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = checkpoint(&dir);
    let resume = std::fs::read(dir.join("resume.bin")).unwrap();
    let mut trainer = Trainer::new(cfg.clone()).unwrap();
    // The intact checkpoint resumes.
    assert!(trainer.resume(&dir, &dir.join("replay")).unwrap().is_some());
    let body = resume[..resume.len() - 32].to_vec();
    fuzz::check(fuzz::fuzz("resume_bin", &[body], |b| {
        std::fs::write(dir.join("resume.bin"), reseal(b)).unwrap();
        voltarena_agents::checkpoint::write_manifest(&dir).unwrap();
        match trainer.resume(&dir, &dir.join("replay")) {
            Ok(_) => true,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                false
            }
        }
    }));
    // Replay segments, decoded straight into a buffer of the run's shape.
    let seg_dir = dir.join("replay");
    let seg = std::fs::read_dir(&seg_dir).unwrap().flatten().map(|e| e.path()).max().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let t = Trainer::new(cfg).unwrap();
    let task = t.task.clone();
    let mut buffer = voltarena_agents::buffer::ReplayBuffer::new(200, task.n_agents(), task.obs_dim(), task.state_dim());
    fuzz::check(fuzz::fuzz("replay_segment", &[bytes[..bytes.len() - 32].to_vec()], |b| buffer.decode_segment(&seg, &reseal(b), 0).is_ok()));
    // The manifest, as text.
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    fuzz::check(fuzz::fuzz("checkpoint_manifest", &[manifest], |b| {
        std::fs::write(dir.join("manifest.json"), b).unwrap();
        voltarena_agents::checkpoint::verify_manifest(&dir).is_ok()
    }));
    let _ = std::fs::remove_dir_all(&dir);
}
