//! `voltarena task list` and `voltarena task show NAME` — what each task is.

use crate::CliError;
use voltarena_env::task::builtin_names;
use voltarena_env::{Split, Task};

#[derive(clap::Subcommand)]
pub enum TaskCommand {
    /// List the built-in tasks.
    List,
    /// Describe a task (built-in name or TOML file).
    Show {
        name: String,
        /// Print the resolved task spec as TOML (a starting point for your own task file).
        #[arg(long)]
        toml: bool,
    },
}

pub fn run(cmd: TaskCommand) -> Result<(), CliError> {
    match cmd {
        TaskCommand::List => {
            println!("{:<17} {:>5} {:>7} {:>6}  description", "task", "buses", "agents", "zones");
            for name in builtin_names() {
                let t = Task::builtin(name).map_err(|e| CliError::Other(e.to_string()))?;
                println!("{:<17} {:>5} {:>7} {:>6}  {}", name, t.network.n_bus(), t.n_agents(), t.zones.len(), t.spec.description);
            }
            Ok(())
        }
        TaskCommand::Show { name, toml } => {
            let t = Task::load(&name).map_err(|e| CliError::Input(e.to_string()))?;
            if toml {
                print!("{}", ::toml::to_string(&t.spec).map_err(|e| CliError::Other(e.to_string()))?);
                return Ok(());
            }
            let s = &t.spec;
            println!("{} — {}", s.name, s.description);
            println!("  source          {}", t.source);
            println!("  network         {} ({} buses, {} branches, base {} MVA)", s.network, t.network.n_bus(), t.network.active_branches().count(), t.network.base_mva);
            println!("  agents          {} PV inverters ({:?} placement), ratings {:.4}–{:.4} MVA", t.n_agents(), s.pv.placement,
                t.pvs.iter().map(|p| p.s_mva).fold(f64::INFINITY, f64::min), t.pvs.iter().map(|p| p.s_mva).fold(0.0, f64::max));
            println!("  loads           {} ({:?} profiles)", t.loads.len(), s.loads.profiles);
            println!("  zones           {} (largest {} buses)", t.zones.len(), t.max_zone);
            for z in &t.zones {
                let agents: Vec<String> = z.agents.iter().map(|&k| t.bus_id[t.pvs[k].bus].to_string()).collect();
                println!("    {:<10} {:>3} buses, agents at bus ids [{}]", z.name, z.buses.len(), agents.join(", "));
            }
            println!("  observation     {} per agent (normalised: {}), state {}", t.obs_dim(), t.normalize, t.state_dim());
            println!("  action          a ∈ [−1, 1] → q = a · {} · √(S² − p²)", s.action_scale);
            println!("  limits          {}–{} pu", s.v_min, s.v_max);
            println!("  time            {} s per step, {} steps per episode ({:.1} h)", s.resolution_s, s.episode_steps, s.episode_steps as f64 * s.resolution_s as f64 / 3600.0);
            println!("  physics         {:?}, mode {:?}", s.backend, s.mode);
            println!("  reward          barrier {:?}, q weight {}, loss weight {}, divergence penalty {}", s.reward.barrier, s.reward.q_weight, s.reward.loss_weight, s.reward.divergence_penalty);
            for split in [Split::Train, Split::Val, Split::Test] {
                let days: usize = split.runs(t.days()).iter().map(|(a, b)| b - a + 1).sum();
                println!("  split {:<9} {} days", format!("{split:?}"), days);
            }
            Ok(())
        }
    }
}
