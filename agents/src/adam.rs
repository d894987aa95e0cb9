//! Adam (Kingma & Ba 2015), computed in Rust on the parameters' f32 data, so that training gives the
//! same numbers on every x86-64 CPU.
//!
//! Why not libtorch's Adam: its update takes `exp_avg_sq.sqrt()`, which libtorch hands to MKL's
//! vector math library, and MKL picks that routine by CPU *vendor*: on an Intel CPU it uses an
//! approximate reciprocal-square-root instruction refined by Newton steps, whose last bits differ
//! from the correctly rounded square root an AMD CPU gets — and MKL's conditional numerical
//! reproducibility does not cover it (measured under QEMU with an Intel CPU model: `sqrt`, `exp`
//! and `log` differ, matmul, `tanh` and reductions do not; docs/BENCHMARKS.md). Here every
//! operation is an IEEE-754 f32 add, multiply, divide or square root in Rust (which never contracts
//! `a * b + c` into a fused multiply-add), correctly rounded and the same on any CPU.
//!
//! The update, per parameter element, at step t = 1, 2, … (defaults as PyTorch's: β₁ = 0.9,
//! β₂ = 0.999, ε = 1e-8, no weight decay):
//!
//! ```text
//! m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
//! p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! The moments live in Rust vectors, so [`Adam::state`] / [`Adam::set_state`] give the exact
//! optimiser state for checkpoints. Parameters on another device than the CPU are copied over and
//! back.

use tch::{nn, Device, Kind, Tensor};

/// Adam over the trainable variables of one variable store.
pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken (t of the bias corrections).
    step: u64,
    vars: Vec<Tensor>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Scratch for one parameter's data and gradient (non-CPU devices, non-contiguous tensors).
    p_buf: Vec<f32>,
    g_buf: Vec<f32>,
}

/// The optimiser state: step count and both moments, per variable in store order.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    pub step: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl Adam {
    /// Adam with PyTorch's default β₁, β₂ and ε over `vs`'s trainable variables (f32).
    pub fn new(vs: &nn::VarStore, lr: f64) -> Adam {
        let vars = vs.trainable_variables();
        let sizes: Vec<usize> = vars.iter().map(|v| v.numel()).collect();
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            vars,
            p_buf: Vec::new(),
            g_buf: Vec::new(),
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Zeroes the gradients of the variables.
    pub fn zero_grad(&mut self) {
        for v in &mut self.vars {
            v.zero_grad();
        }
    }

    /// One update from the gradients in the variables (variables without a gradient are skipped,
    /// as PyTorch does).
    pub fn step(&mut self) {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let (c1, c2) = ((1.0 - self.beta1) as f32, (1.0 - self.beta2) as f32);
        let step_size = (self.lr / (1.0 - self.beta1.powi(t))) as f32;
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt() as f32;
        let eps = self.eps as f32;
        tch::no_grad(|| {
            for (k, var) in self.vars.iter().enumerate() {
                let g = var.grad();
                if !g.defined() {
                    continue;
                }
                let n = var.numel();
                read_f32(&g, &mut self.g_buf);
                let direct = var.device() == Device::Cpu && var.kind() == Kind::Float && var.is_contiguous();
                if !direct {
                    read_f32(var, &mut self.p_buf);
                }
                // SAFETY: a contiguous f32 CPU tensor of n elements owns n f32 at data_ptr; no
                // other reference to its data is alive during the update (under no_grad).
                let p: &mut [f32] = if direct { unsafe { std::slice::from_raw_parts_mut(var.data_ptr() as *mut f32, n) } } else { &mut self.p_buf };
                let (m, v, g) = (&mut self.m[k], &mut self.v[k], &self.g_buf);
                for i in 0..n {
                    m[i] = b1 * m[i] + c1 * g[i];
                    v[i] = b2 * v[i] + c2 * (g[i] * g[i]);
                    p[i] -= step_size * (m[i] / (v[i].sqrt() / bc2_sqrt + eps));
                }
                if !direct {
                    let mut var = var.shallow_clone();
                    var.copy_(&Tensor::from_slice(&self.p_buf).view(var.size().as_slice()).to_device(var.device()));
                }
            }
        });
    }

    /// The state (for checkpoints).
    pub fn state(&self) -> AdamState {
        AdamState { step: self.step, m: self.m.clone(), v: self.v.clone() }
    }

    /// Restores a state from [`state`](Self::state); refused if its shapes are not this optimiser's.
    pub fn set_state(&mut self, s: AdamState) -> Result<(), String> {
        let fits = |x: &[Vec<f32>]| x.len() == self.m.len() && x.iter().zip(&self.m).all(|(a, b)| a.len() == b.len());
        if !fits(&s.m) || !fits(&s.v) {
            return Err(format!("optimizer state: {} moment vectors of sizes {:?}, expected {:?}", s.m.len(), s.m.iter().map(Vec::len).collect::<Vec<_>>(), self.m.iter().map(Vec::len).collect::<Vec<_>>()));
        }
        self.step = s.step;
        self.m = s.m;
        self.v = s.v;
        Ok(())
    }
}

impl Adam {
    /// The exact state (step count, both moments) for resumable checkpoints.
    pub fn write(&self, w: &mut crate::checkpoint::Writer) {
        w.u64(self.step);
        w.usize(self.m.len());
        for (m, v) in self.m.iter().zip(&self.v) {
            w.f32s(m);
            w.f32s(v);
        }
    }

    /// Reads [`write`](Self::write)'s output; refused if the shapes are not this optimiser's.
    pub fn read(&mut self, r: &mut crate::checkpoint::Reader, what: &str) -> Result<(), crate::checkpoint::CheckpointError> {
        let step = r.u64(what)?;
        let k = r.usize(what)?;
        let mut s = AdamState { step, m: Vec::with_capacity(k.min(1024)), v: Vec::with_capacity(k.min(1024)) };
        for _ in 0..k {
            s.m.push(r.f32s(what)?);
            s.v.push(r.f32s(what)?);
        }
        self.set_state(s).map_err(|e| crate::checkpoint::CheckpointError::format(r.path(), format!("{what}: {e}")))
    }
}

/// Copies a tensor's data as f32 into `out` (resized).
fn read_f32(t: &Tensor, out: &mut Vec<f32>) {
    let c = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    out.resize(c.numel(), 0.0);
    c.copy_data(out, c.numel());
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{Module, OptimizerConfig};

    /// The tests draw from libtorch's global generator: one at a time.
    static GLOBAL_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The same small regression trained with this Adam and with libtorch's: the parameters agree to
    /// float rounding after 200 steps (the two differ only in how each f32 operation is grouped).
    #[test]
    fn matches_libtorch_adam() {
        let _g = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
        crate::numerics::pin();
        let run = |ours: bool, steps: usize| -> Vec<f32> {
            tch::manual_seed(7);
            let vs = nn::VarStore::new(Device::Cpu);
            let net = nn::seq().add(nn::linear(vs.root() / "a", 8, 16, Default::default())).add_fn(|x| x.tanh()).add(nn::linear(vs.root() / "b", 16, 1, Default::default()));
            let x = Tensor::randn([64, 8], (Kind::Float, Device::Cpu));
            let y = x.sum_dim_intlist(1, true, Kind::Float).sin();
            let mut mine = Adam::new(&vs, 1e-2);
            let mut theirs = nn::Adam::default().build(&vs, 1e-2).unwrap();
            for _ in 0..steps {
                let loss = net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
                if ours {
                    mine.zero_grad();
                    loss.backward();
                    mine.step();
                } else {
                    theirs.zero_grad();
                    loss.backward();
                    theirs.step();
                }
            }
            let flat: Vec<Tensor> = vs.trainable_variables().iter().map(|v| v.flatten(0, -1)).collect();
            let all = Tensor::cat(&flat, 0);
            let mut out = vec![0.0f32; all.numel()];
            all.copy_data(&mut out, all.numel());
            out
        };
        let worst = |steps| {
            let (a, b) = (run(true, steps), run(false, steps));
            assert_eq!(a.len(), b.len());
            a.iter().zip(&b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-3)).fold(0.0f32, f32::max)
        };
        let (one, many) = (worst(1), worst(200));
        assert!(one < 1e-5, "after one step: largest relative difference {one}");
        assert!(many < 1e-3, "after 200 steps: largest relative difference {many}");
    }

    #[test]
    fn state_round_trips_and_is_checked() {
        let _g = GLOBAL_RNG.lock().unwrap_or_else(|e| e.into_inner());
        crate::numerics::pin();
        let vs = nn::VarStore::new(Device::Cpu);
        let _l = nn::linear(vs.root(), 3, 2, Default::default());
        let mut a = Adam::new(&vs, 1e-3);
        let mut s = a.state();
        s.step = 5;
        s.m[0][0] = 0.25;
        a.set_state(s.clone()).unwrap();
        assert_eq!(a.state(), s);
        s.m[0].push(1.0);
        assert!(a.set_state(s).is_err());
    }
}
