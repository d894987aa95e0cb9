//! `voltarena train --resume RUN_DIR` after SIGKILL at random moments: the resumed run's
//! metrics.csv and final policy equal the uninterrupted run's, bit for bit; damaged checkpoints are
//! refused naming the file. A real training process is killed (the random moments are drawn from
//! `VOLTARENA_KILL_SEED`, or the clock, and printed so that a failure can be replayed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_voltarena"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn runs_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("va-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A small run that checkpoints often, with a replay buffer smaller than the run (old segments are
/// dropped), validation (a best policy) and the projection safety layer (its warm start carries
/// from step to step).
fn train_args(runs: &Path) -> Vec<String> {
    let mut v: Vec<String> = ["train", "../configs/matd3_mapdn33.toml", "--runs-dir"].iter().map(|s| s.to_string()).collect();
    v.push(runs.display().to_string());
    for s in ["total_steps=1200", "learning_starts=240", "eval_every=120", "eval_episodes=1", "checkpoint_every=60", "matd3.batch_size=32", "buffer_size=500", "safety.kind=\"projection\""] {
        v.push("--set".into());
        v.push(s.into());
    }
    v
}

/// xorshift64*: the random kill moments.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `cmd`, killing it with SIGKILL after `after` unless it ends first: (finished, stderr).
fn run_or_kill(cmd: &mut Command, after: Duration) -> (bool, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    let finished = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if t0.elapsed() >= after {
            child.kill().unwrap(); // SIGKILL on Unix
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = child.wait_with_output().unwrap();
    if finished {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    (finished, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn the_run(runs: &Path) -> Option<PathBuf> {
    std::fs::read_dir(runs).ok()?.flatten().map(|e| e.path()).find(|p| p.join("config.toml").exists())
}

/// `eval --json` of both checkpoints, without the folder names.
fn evals(run: &Path) -> Vec<String> {
    ["last", "best"]
        .iter()
        .map(|c| {
            let (code, out, err) = voltarena(&["eval", run.to_str().unwrap(), "--episodes", "2", "--json", "--checkpoint", c]);
            assert_eq!(code, 0, "{err}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let mut v = v.as_object().unwrap().clone();
            v.remove("checkpoint");
            serde_json::to_string(&v).unwrap()
        })
        .collect()
}

#[test]
fn a_run_killed_at_random_moments_resumes_bit_for_bit() {
    let base = runs_dir("kill");
    let reference = base.join("reference");
    let t0 = Instant::now();
    let (code, _, err) = voltarena(&train_args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let full = t0.elapsed();
    let reference = the_run(&reference).unwrap();
    let seed = std::env::var("VOLTARENA_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("VOLTARENA_KILL_SEED={seed} (uninterrupted run: {:.2} s)", full.as_secs_f64());
    let mut rng = Rng(seed);
    let killed = base.join("killed");
    // A first kill can land before the first checkpoint (or a loaded machine can finish the run
    // before the kill): then no resume starts inside the run, and the whole sequence is redrawn.
    let mut attempt = 0;
    let (run, mid_run) = loop {
    attempt += 1;
    let _ = std::fs::remove_dir_all(&killed);
    // Start, killed somewhere in the run (again if it died before its directory was complete).
    let mut run = None;
    for _ in 0..10 {
        let (finished, _) = run_or_kill(bin().args(train_args(&killed)), full.mul_f64(0.2 + 0.7 * rng.unit()));
        if let Some(r) = the_run(&killed) {
            run = Some((r, finished));
            break;
        }
        let _ = std::fs::remove_dir_all(&killed);
    }
    let (run, mut finished) = run.expect("a run directory");
    // Resume, killed again at random moments, until a resume runs to the end.
    let (mut kills, mut mid_run) = (1, 0);
    while !finished {
        let limit = if kills < 6 { full.mul_f64(0.05 + 0.45 * rng.unit()) } else { Duration::from_secs(600) };
        let (done, stderr) = run_or_kill(bin().args(["train", "--resume", run.to_str().unwrap()]), limit);
        if let Some(step) = stderr.split("at step ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse::<usize>().ok()) {
            mid_run += (step > 0 && step < 1200) as usize;
        }
        finished = done;
        kills += !done as usize;
    }
    eprintln!("attempt {attempt}: {kills} kills, {mid_run} resumes from a checkpoint inside the run");
    if mid_run >= 1 || attempt == 4 {
        break (run, mid_run);
    }
    };
    assert!(mid_run >= 1, "no resume started from a checkpoint inside the run (kills too early or too late)");
    let csv = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    assert_eq!(csv(&run), csv(&reference), "metrics.csv differs from the uninterrupted run's");
    assert_eq!(evals(&run), evals(&reference), "the final policies differ");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_file() {
    let runs = runs_dir("damaged");
    let (code, _, err) = voltarena(&train_args(&runs).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let run = the_run(&runs).unwrap();
    let copy = |name: &str| {
        let d = runs.join(name);
        let out = Command::new("cp").arg("-r").arg(&run).arg(&d).output().unwrap();
        assert!(out.status.success());
        d
    };
    let resume = |d: &Path| voltarena(&["train", "--resume", d.to_str().unwrap()]);
    // The intact copy resumes (at its end: nothing left to train).
    let intact = copy("intact");
    let (code, _, err) = resume(&intact);
    assert_eq!(code, 0, "{err}");
    // One flipped bit in resume.bin.
    let d = copy("flipped");
    let p = d.join("checkpoint/resume.bin");
    let mut b = std::fs::read(&p).unwrap();
    b[100] ^= 4;
    std::fs::write(&p, &b).unwrap();
    let (code, _, err) = resume(&d);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("resume.bin") && err.contains("SHA-256") && !err.contains("panicked"), "{err}");
    // A truncated network file: resume and eval both refuse it.
    let d = copy("truncated");
    let p = d.join("checkpoint/actor.ot");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    let (code, _, err) = resume(&d);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("actor.ot") && err.contains("truncated"), "{err}");
    let (code, _, err) = voltarena(&["eval", d.to_str().unwrap(), "--checkpoint", "last"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("actor.ot"), "{err}");
    // A replay segment missing, and one corrupted.
    for (name, damage) in [("missing", 0), ("corrupted", 1)] {
        let d = copy(name);
        let seg = std::fs::read_dir(d.join("replay")).unwrap().flatten().map(|e| e.path()).max().unwrap();
        if damage == 0 {
            std::fs::remove_file(&seg).unwrap();
        } else {
            let mut b = std::fs::read(&seg).unwrap();
            b[50] ^= 1;
            std::fs::write(&seg, &b).unwrap();
        }
        let (code, _, err) = resume(&d);
        assert_eq!(code, 2, "{name}: {err}");
        let file = seg.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.contains(&file) && !err.contains("panicked"), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(&runs);
}

/// A leaderboard array task (`--entry K`, as Slurm runs it) killed mid-training and run again —
/// what a requeue after preemption does — resumes its run directory and writes the entry of an
/// uninterrupted task.
#[test]
fn a_killed_leaderboard_entry_resumes_its_run_directory() {
    let base = runs_dir("entry");
    std::fs::create_dir_all(&base).unwrap();
    let suite = base.join("suite.toml");
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/matd3_mapdn33.toml");
    std::fs::write(
        &suite,
        format!(
            "name = \"resume\"\ntasks = [\"mapdn33\"]\nseeds = [3]\neval_episodes = 1\n\n[[controllers]]\nname = \"matd3\"\nkind = \"rl\"\ntrain = \"{}\"\n\
             set = [\"total_steps=1200\", \"learning_starts=240\", \"eval_every=0\", \"checkpoint_every=0\", \"matd3.batch_size=32\", \"buffer_size=500\"]\n",
            cfg.display()
        ),
    )
    .unwrap();
    let entry = |out: &Path| {
        let mut c = bin();
        c.args(["leaderboard", suite.to_str().unwrap(), "--entry", "0", "--out", out.to_str().unwrap()]).env("VOLTARENA_CHECKPOINT_SECS", "0.05");
        c
    };
    let t0 = Instant::now();
    let (done, err) = run_or_kill(&mut entry(&base.join("reference")), Duration::from_secs(600));
    assert!(done, "{err}");
    let full = t0.elapsed();
    let out = base.join("requeued");
    let mut resumed = 0;
    for (i, f) in [0.5, 0.35, 0.35, 0.35].iter().enumerate() {
        let (done, err) = run_or_kill(&mut entry(&out), full.mul_f64(*f));
        resumed += err.contains("resuming") as usize;
        assert!(!done || i > 0, "the first attempt must be killed ({:.2} s run)", full.as_secs_f64());
        if done {
            break;
        }
    }
    let (done, err) = run_or_kill(&mut entry(&out), Duration::from_secs(600));
    assert!(done, "{err}");
    resumed += err.contains("resuming") as usize;
    assert!(resumed >= 1, "no attempt resumed from a checkpoint");
    let read = |d: &Path| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("entries/0.json")).unwrap()).unwrap();
        let mut e = v["entry"].clone();
        e.as_object_mut().unwrap().remove("compute_us_per_step");
        e
    };
    assert_eq!(read(&out), read(&base.join("reference")), "the requeued entry differs from the uninterrupted one");
    // The finished run directory keeps the final policy only.
    assert!(!out.join("runs/mapdn33/matd3/seed3/replay").exists());
    let _ = std::fs::remove_dir_all(&base);
}
