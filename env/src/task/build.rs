//! [`Task::build`]: a [`TaskSpec`] resolved against the data folder (network, profiles), in named
//! steps run top to bottom. Every step fails with a [`TaskError`] naming the task's source and the
//! field; the steps run in a fixed order, so a spec with several errors reports the first one in
//! that order.

use super::schema::{BusItem, BusSet, LoadProfiles, Mode, PvPlacement, PvSpec, Rating, TaskSpec, ZoneList, ZoneSource};
use super::{data_dir, profiles_cached, Task, TaskError, TaskLoad, TaskPv, Zone};
use crate::profiles::{start_ranges, Profiles, Split, DAYS, ROWS_PER_DAY};
use rand::{RngExt, SeedableRng};
use std::path::Path;
use voltarena_grid::network::{DetailedNetwork, Load, LoadError, Network};

impl Task {
    /// Resolves a spec against the data folder: checks the scalar settings, reads the network,
    /// places the loads and the PV inverters (the agents), sizes and rates the inverters, builds
    /// the zones, checks the faults and the episode length, and chooses the metric buses and the
    /// observation scales.
    pub fn build(spec: TaskSpec, source: &str, dir: Option<&Path>) -> Result<Task, TaskError> {
        let cx = Cx { source };
        check_settings(&spec, cx)?;
        let data = data_dir();
        let det = read_network(&spec, dir, &data, cx)?;
        let profiles = profiles_cached(&data.join("profiles"))?;
        let network = network_with_slack_voltage(&spec, &det, cx)?;
        let loads = place_loads(&spec, &det, &profiles, cx)?;
        let mut pvs = place_pvs(&spec.pv, &det, &network, &profiles, cx)?;
        size_pvs(&spec.pv, &mut pvs, &det, &network, &profiles, cx)?;
        rate_inverters(&spec, &mut pvs, &det, &profiles, cx)?;
        let zones = build_zones(&spec, &det, &network, &mut pvs, cx)?;
        check_faults(&spec, pvs.len(), cx)?;
        check_episode_fits(&spec, &profiles, cx)?;
        Ok(Task {
            max_zone: zones.iter().map(|z| z.buses.len()).max().unwrap_or(0),
            metric_buses: metric_buses(&spec, &network),
            power_scale_mw: power_scale_mw(&pvs),
            normalize: spec.observation.normalize.unwrap_or(spec.mode == Mode::Clean),
            n_branches: network.active_branches().count(),
            source: source.into(),
            network,
            bus_id: det.bus_id,
            loads,
            pvs,
            zones,
            profiles,
            spec,
        })
    }
}

/// What errors point at: the task's source.
#[derive(Clone, Copy)]
struct Cx<'a> {
    source: &'a str,
}

impl Cx<'_> {
    fn err(self, field: &str, message: impl Into<String>) -> TaskError {
        TaskError::new(self.source, field, message)
    }

    /// The profile column `name`, or an error on `field`.
    fn column(self, profiles: &Profiles, name: &str, field: &str) -> Result<usize, TaskError> {
        profiles.column(name).ok_or_else(|| self.err(field, format!("unknown profile '{name}'")))
    }
}

/// Step 1: the settings that need no data (time, limits, action scale, rating factor, noise).
fn check_settings(spec: &TaskSpec, cx: Cx) -> Result<(), TaskError> {
    // Every number of a task is finite (TOML spells inf and nan; none of the keys means "no limit").
    if let Ok(v) = toml::Value::try_from(spec) {
        if let Some(key) = non_finite(&v, String::new()) {
            return Err(cx.err(&key, "expected a finite number"));
        }
    }
    if spec.resolution_s == 0 || 86_400 % spec.resolution_s != 0 {
        return Err(cx.err("resolution_s", format!("must divide a day (86400 s) evenly, got {}", spec.resolution_s)));
    }
    if spec.episode_steps == 0 {
        return Err(cx.err("episode_steps", "must be at least 1"));
    }
    if !(spec.v_min > 0.0 && spec.v_min < spec.v_max) {
        return Err(cx.err("v_min", format!("expected 0 < v_min < v_max, got {} and {}", spec.v_min, spec.v_max)));
    }
    if !(spec.action_scale > 0.0 && spec.action_scale <= 1.0) {
        return Err(cx.err("action_scale", format!("expected 0 < action_scale ≤ 1, got {}", spec.action_scale)));
    }
    if !(spec.pv.rating_factor >= 1.0) {
        return Err(cx.err("pv.rating_factor", format!("inverter rating must be at least the PV size (≥ 1), got {}", spec.pv.rating_factor)));
    }
    if !(0.0..=1.0).contains(&spec.faults.drop_prob) {
        return Err(cx.err("faults.drop_prob", format!("expected a probability in [0, 1], got {}", spec.faults.drop_prob)));
    }
    if spec.noise.data_sigma_frac < 0.0 || spec.noise.fluctuation_sigma < 0.0 || spec.observation.voltage_noise_pu < 0.0 {
        return Err(cx.err("noise", "standard deviations must be ≥ 0"));
    }
    if spec.noise.fluctuation_sigma > 0.0 && !(spec.noise.fluctuation_tau_s > 0.0) {
        return Err(cx.err("noise.fluctuation_tau_s", "must be positive"));
    }
    Ok(())
}

/// Step 2: the network file, next to the task file or in the data folder.
fn read_network(spec: &TaskSpec, dir: Option<&Path>, data: &Path, cx: Cx) -> Result<DetailedNetwork, TaskError> {
    let path = [dir.map(|d| d.join(&spec.network)), Some(data.join(&spec.network))]
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .ok_or_else(|| cx.err("network", format!("file '{}' not found (looked next to the task file and in {})", spec.network, data.display())))?;
    Network::from_json_file(&path).map_err(|e| match e {
        LoadError::Io { path, source } => cx.err("network", format!("cannot read {}: {source}", path.display())),
        LoadError::Invalid(e) => cx.err("network", e.to_string()),
    })
}

/// Step 3: the network the physics uses, with the slack voltage of `slack_vm_pu` if set.
fn network_with_slack_voltage(spec: &TaskSpec, det: &DetailedNetwork, cx: Cx) -> Result<Network, TaskError> {
    let mut net = det.network.clone();
    if let Some(v) = spec.slack_vm_pu {
        if !(v > 0.5 && v < 1.5) {
            return Err(cx.err("slack_vm_pu", format!("expected a voltage in (0.5, 1.5) pu, got {v}")));
        }
        let slack = net.slack;
        net.buses[slack].vm_pu = v;
    }
    Ok(net)
}

/// Step 4: one [`TaskLoad`] per in-service load, with its profile columns, scaled to
/// `loads.peak_total_mw`, with the standard deviations of the data-noise model.
fn place_loads(spec: &TaskSpec, det: &DetailedNetwork, profiles: &Profiles, cx: Cx) -> Result<Vec<TaskLoad>, TaskError> {
    let mut loads = Vec::new();
    let mut cycles = (0usize, 0usize);
    for (k, l) in det.loads.iter().enumerate().filter(|(_, l)| l.in_service) {
        let name = load_profile(spec, k, l, &mut cycles, cx)?;
        let p_col = cx.column(profiles, &format!("{name}_pload"), "loads.profiles")?;
        let q_col = cx.column(profiles, &format!("{name}_qload"), "loads.profiles")?;
        loads.push(TaskLoad { bus: l.bus, p_mw: l.p_mw, q_mvar: l.q_mvar, p_col, q_col, p_std: 0.0, q_std: 0.0 });
    }
    if let Some(peak) = spec.loads.peak_total_mw {
        if !(peak > 0.0) {
            return Err(cx.err("loads.peak_total_mw", format!("must be positive, got {peak}")));
        }
        let cur = peak_of_total(profiles, loads.iter().map(|l| (l.p_mw, l.p_col)));
        if !(cur > 0.0) {
            return Err(cx.err("loads.peak_total_mw", "the loads' total is never positive; cannot scale"));
        }
        for l in &mut loads {
            l.p_mw *= peak / cur;
            l.q_mvar *= peak / cur;
        }
    }
    for l in &mut loads {
        l.p_std = l.p_mw.abs() * std_dev(profiles.values(l.p_col));
        l.q_std = l.q_mvar.abs() * std_dev(profiles.values(l.q_col));
    }
    Ok(loads)
}

/// The profile name of load `k`: its own (`network`), or the next one of the household or the
/// commercial cycle (`by_size`; `cycles` counts the loads given each so far).
fn load_profile(spec: &TaskSpec, k: usize, l: &Load, cycles: &mut (usize, usize), cx: Cx) -> Result<String, TaskError> {
    let s = &spec.loads;
    match s.profiles {
        LoadProfiles::Network => l.profile.clone().ok_or_else(|| {
            cx.err("loads.profiles", format!("load {} (id {}) has no profile in the network; use profiles = \"by_size\"", k, l.id))
        }),
        LoadProfiles::BySize => {
            let (list, i, field) = if l.p_mw >= s.commercial_above_mw && !s.commercial.is_empty() {
                cycles.1 += 1;
                (&s.commercial, cycles.1 - 1, "loads.commercial")
            } else {
                cycles.0 += 1;
                (&s.household, cycles.0 - 1, "loads.household")
            };
            if list.is_empty() {
                return Err(cx.err(field, "needs at least one profile name"));
            }
            Ok(list[i % list.len()].clone())
        }
    }
}

/// Step 5: the PV inverters (the agents) of `pv.placement`, with their profile columns and
/// nominal sizes; not yet rated, in no zone yet.
fn place_pvs(pv: &PvSpec, det: &DetailedNetwork, net: &Network, profiles: &Profiles, cx: Cx) -> Result<Vec<TaskPv>, TaskError> {
    let pvs = match pv.placement {
        PvPlacement::Sgens => pvs_at_sgens(pv, det, profiles, cx)?,
        PvPlacement::EveryBus => pvs_at_every_bus(pv, net, profiles, cx)?,
        PvPlacement::Units => pvs_of_units(pv, det, profiles, cx)?,
    };
    if pvs.is_empty() {
        return Err(cx.err("pv", "the task has no PV inverter, hence no agent"));
    }
    Ok(pvs)
}

/// A placed PV of nominal size `p_mw` (MW), before profile normalisation, scaling and rating.
fn placed_pv(bus: usize, p_mw: f64, col: usize) -> TaskPv {
    TaskPv { bus, p_mw, dc_mw: p_mw, s_mva: 0.0, col, p_std: 0.0, zone: usize::MAX }
}

/// `placement = "sgens"`: the in-service static generators in id order; those without a profile
/// cycle through `pv.profiles`.
fn pvs_at_sgens(pv: &PvSpec, det: &DetailedNetwork, profiles: &Profiles, cx: Cx) -> Result<Vec<TaskPv>, TaskError> {
    let mut pvs = Vec::new();
    let mut cycle = 0usize;
    let mut sg: Vec<_> = det.sgens.iter().filter(|g| g.in_service).collect();
    sg.sort_by_key(|g| g.id);
    for g in sg {
        let name = match &g.profile {
            Some(p) => p.clone(),
            None => {
                if pv.profiles.is_empty() {
                    return Err(cx.err("pv.profiles", format!("sgen id {} has no profile; list PV profiles to assign", g.id)));
                }
                cycle += 1;
                pv.profiles[(cycle - 1) % pv.profiles.len()].clone()
            }
        };
        pvs.push(placed_pv(g.bus, g.p_mw, cx.column(profiles, &name, "pv.profiles")?));
    }
    Ok(pvs)
}

/// `placement = "every_bus"`: one PV at every non-slack bus, in bus order, DC size uniform in
/// [`dc_kw_min`, `dc_kw_max`] (kW) from `seed`, profiles cycled.
fn pvs_at_every_bus(pv: &PvSpec, net: &Network, profiles: &Profiles, cx: Cx) -> Result<Vec<TaskPv>, TaskError> {
    if !(pv.dc_kw_min > 0.0 && pv.dc_kw_min <= pv.dc_kw_max) {
        return Err(cx.err("pv.dc_kw_min", format!("expected 0 < dc_kw_min ≤ dc_kw_max, got {} and {}", pv.dc_kw_min, pv.dc_kw_max)));
    }
    if pv.profiles.is_empty() {
        return Err(cx.err("pv.profiles", "list at least one PV profile"));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(pv.seed);
    let mut pvs = Vec::new();
    for b in (0..net.n_bus()).filter(|&b| b != net.slack) {
        let dc_kw = rng.random_range(pv.dc_kw_min..=pv.dc_kw_max);
        let name = &pv.profiles[pvs.len() % pv.profiles.len()];
        pvs.push(placed_pv(b, dc_kw / 1000.0, cx.column(profiles, name, "pv.profiles")?));
    }
    Ok(pvs)
}

/// `placement = "units"`: the units of `[[pv.units]]`.
fn pvs_of_units(pv: &PvSpec, det: &DetailedNetwork, profiles: &Profiles, cx: Cx) -> Result<Vec<TaskPv>, TaskError> {
    let mut pvs = Vec::new();
    for (i, u) in pv.units.iter().enumerate() {
        let field = format!("pv.units[{i}]");
        let bus = det.bus_index(u.bus).ok_or_else(|| cx.err(&format!("{field}.bus"), format!("bus id {} is not in the network", u.bus)))?;
        if !(u.dc_kw > 0.0) {
            return Err(cx.err(&format!("{field}.dc_kw"), format!("expected a positive size, got {}", u.dc_kw)));
        }
        pvs.push(placed_pv(bus, u.dc_kw / 1000.0, cx.column(profiles, &u.profile, &format!("{field}.profile"))?));
    }
    Ok(pvs)
}

/// Step 6: PV sizes — each profile divided by its annual maximum (`normalize_profile`), the
/// placement checked (no PV on the slack, none negative), all scaled to `pv.peak_total_mw`.
fn size_pvs(pv: &PvSpec, pvs: &mut [TaskPv], det: &DetailedNetwork, net: &Network, profiles: &Profiles, cx: Cx) -> Result<(), TaskError> {
    if pv.normalize_profile {
        for g in pvs.iter_mut() {
            let peak = profiles.values(g.col).iter().copied().fold(0.0, f64::max);
            if peak > 0.0 {
                g.p_mw /= peak;
            }
        }
    }
    for (k, g) in pvs.iter().enumerate() {
        if g.bus == net.slack {
            return Err(cx.err("pv", format!("PV {k} sits on the slack bus (id {}), where it cannot affect voltages", det.bus_id[g.bus])));
        }
        if !(g.p_mw >= 0.0) {
            return Err(cx.err("pv", format!("PV {k} (bus id {}) has a negative size {} MW", det.bus_id[g.bus], g.p_mw)));
        }
    }
    if let Some(peak) = pv.peak_total_mw {
        if !(peak > 0.0) {
            return Err(cx.err("pv.peak_total_mw", format!("must be positive, got {peak}")));
        }
        let cur = peak_of_total(profiles, pvs.iter().map(|g| (g.p_mw, g.col)));
        if !(cur > 0.0) {
            return Err(cx.err("pv.peak_total_mw", "the PVs never produce; cannot scale"));
        }
        for g in pvs.iter_mut() {
            g.p_mw *= peak / cur;
            g.dc_mw *= peak / cur;
        }
    }
    Ok(())
}

/// Step 7: inverter ratings S = `rating_factor` × (peak or nominal size), and the PVs' standard
/// deviations for the data-noise model. MAPDN (compat) takes the peak over the whole file, clean
/// mode over the training days.
fn rate_inverters(spec: &TaskSpec, pvs: &mut [TaskPv], det: &DetailedNetwork, profiles: &Profiles, cx: Cx) -> Result<(), TaskError> {
    let train_rows: Vec<usize> =
        (0..profiles.rows()).filter(|&t| spec.mode == Mode::Compat || Split::of_day(t / ROWS_PER_DAY) == Split::Train).collect();
    for g in pvs.iter_mut() {
        let vals = profiles.values(g.col);
        g.s_mva = spec.pv.rating_factor
            * match spec.pv.rating {
                Rating::Peak => g.p_mw * train_rows.iter().map(|&t| vals[t]).fold(0.0, f64::max),
                Rating::Nominal => g.dc_mw,
            };
        g.p_std = g.p_mw * std_dev(vals);
        if !(g.s_mva > 0.0) {
            return Err(cx.err("pv", format!("PV at bus id {} never produces: its rating would be 0", det.bus_id[g.bus])));
        }
    }
    Ok(())
}

/// Step 8: the zones of `zones.source`, buses sorted by id; every PV joins the zone of its bus
/// (`TaskPv::zone`, `Zone::agents`), and zones without a PV are dropped.
fn build_zones(spec: &TaskSpec, det: &DetailedNetwork, net: &Network, pvs: &mut [TaskPv], cx: Cx) -> Result<Vec<Zone>, TaskError> {
    let (mut zones, zone_of) = match spec.zones.source {
        ZoneSource::Lists => zones_of_lists(&spec.zones.list, det, net.n_bus(), cx)?,
        ZoneSource::Feeders => zones_of_feeders(net, cx)?,
    };
    for z in &mut zones {
        z.buses.sort_by_key(|&b| det.bus_id[b]);
    }
    for (k, pv) in pvs.iter_mut().enumerate() {
        let z = zone_of[pv.bus];
        if z == usize::MAX {
            return Err(cx.err("zones", format!("PV {k} at bus id {} is in no zone", det.bus_id[pv.bus])));
        }
        pv.zone = z;
        zones[z].agents.push(k);
    }
    zones.retain(|z| !z.agents.is_empty());
    for (zi, z) in zones.iter().enumerate() {
        for &k in &z.agents {
            pvs[k].zone = zi;
        }
    }
    Ok(zones)
}

/// `source = "lists"`: the zones and, per bus, its zone (`usize::MAX`: none).
fn zones_of_lists(lists: &[ZoneList], det: &DetailedNetwork, n_bus: usize, cx: Cx) -> Result<(Vec<Zone>, Vec<usize>), TaskError> {
    if lists.is_empty() {
        return Err(cx.err("zones.list", "source = \"lists\" needs at least one [[zones.list]]"));
    }
    let mut zones: Vec<Zone> = Vec::new();
    let mut zone_of = vec![usize::MAX; n_bus];
    for (zi, z) in lists.iter().enumerate() {
        let zone = list_zone(z, zi, det, &zones, &mut zone_of, cx)?;
        zones.push(zone);
    }
    Ok((zones, zone_of))
}

/// The zone of `[[zones.list]]` number `zi` (after the zones `earlier`), its buses marked in
/// `zone_of`.
fn list_zone(z: &ZoneList, zi: usize, det: &DetailedNetwork, earlier: &[Zone], zone_of: &mut [usize], cx: Cx) -> Result<Zone, TaskError> {
    let field = format!("zones.list[{zi}].buses");
    let mut buses = Vec::new();
    for item in &z.buses {
        let (a, b) = match item {
            BusItem::Id(i) => (*i, *i),
            BusItem::Range(s) => parse_range(s).ok_or_else(|| cx.err(&field, format!("'{s}' is neither a bus id nor a range 'a-b'")))?,
        };
        for id in a..=b {
            let bi = det.bus_index(id).ok_or_else(|| cx.err(&field, format!("zone '{}': bus id {id} is not in the network", z.name)))?;
            if zone_of[bi] != usize::MAX {
                let other = earlier.get(zone_of[bi]).map(|o| o.name.as_str()).unwrap_or(&z.name);
                return Err(cx.err(&field, format!("bus id {id} is in both zone '{other}' and zone '{}'; zones must not overlap", z.name)));
            }
            zone_of[bi] = earlier.len();
            buses.push(bi);
        }
    }
    Ok(Zone { name: z.name.clone(), buses, agents: Vec::new() })
}

/// `source = "feeders"`: one zone per feeder leaving the slack bus, and per bus its zone.
fn zones_of_feeders(net: &Network, cx: Cx) -> Result<(Vec<Zone>, Vec<usize>), TaskError> {
    let tree = net.tree().ok_or_else(|| cx.err("zones.source", "\"feeders\" needs a radial network"))?;
    let mut zones = Vec::new();
    let mut zone_of = vec![usize::MAX; net.n_bus()];
    for &c in tree.children(net.slack) {
        let mut buses = Vec::new();
        let mut stack = vec![c];
        while let Some(b) = stack.pop() {
            zone_of[b] = zones.len();
            buses.push(b);
            stack.extend_from_slice(tree.children(b));
        }
        zones.push(Zone { name: format!("feeder{}", zones.len() + 1), buses, agents: Vec::new() });
    }
    Ok((zones, zone_of))
}

/// Step 9: the failed agents exist and their step spans are well formed.
fn check_faults(spec: &TaskSpec, n_agents: usize, cx: Cx) -> Result<(), TaskError> {
    for (i, f) in spec.faults.agents.iter().enumerate() {
        if f.agent >= n_agents {
            return Err(cx.err(&format!("faults.agents[{i}].agent"), format!("agent {} does not exist (the task has {n_agents})", f.agent)));
        }
        if f.from_step == 0 || f.from_step > f.to_step {
            return Err(cx.err(&format!("faults.agents[{i}]"), format!("expected 1 ≤ from_step ≤ to_step, got {} and {}", f.from_step, f.to_step)));
        }
    }
    Ok(())
}

/// Step 10: the episode fits in the test runs (2 days), so that every split can host it.
fn check_episode_fits(spec: &TaskSpec, profiles: &Profiles, cx: Cx) -> Result<(), TaskError> {
    let days = profiles.rows() / ROWS_PER_DAY;
    let window = match &spec.start_window {
        None => None,
        Some([a, b]) => {
            let bad = || cx.err("start_window", format!("expected [\"HH:MM\", \"HH:MM\"] with the first not after the second, got [{a:?}, {b:?}]"));
            match (crate::profiles::parse_hhmm(a), crate::profiles::parse_hhmm(b)) {
                (Some(x), Some(y)) if x <= y => Some((x, y)),
                _ => return Err(bad()),
            }
        }
    };
    if start_ranges(Split::Test, days.min(DAYS), spec.resolution_s, spec.episode_steps, window).is_empty() {
        return Err(cx.err(
            "episode_steps",
            format!("{} steps of {} s do not fit in the 2-day test blocks of the day split", spec.episode_steps, spec.resolution_s),
        ));
    }
    Ok(())
}

/// Step 11: the buses of the reward's voltage term and of CR (`reward.buses`; default: all for
/// compat mode, non-slack for clean).
fn metric_buses(spec: &TaskSpec, net: &Network) -> Vec<usize> {
    let bus_set = spec.reward.buses.unwrap_or(if spec.mode == Mode::Compat { BusSet::All } else { BusSet::NonSlack });
    (0..net.n_bus()).filter(|&b| bus_set == BusSet::All || b != net.slack).collect()
}

/// Step 12: the observation power scale, the mean inverter rating (MVA).
fn power_scale_mw(pvs: &[TaskPv]) -> f64 {
    pvs.iter().map(|g| g.s_mva).sum::<f64>() / pvs.len() as f64
}

/// The year's peak of Σ p × profile(t) over `(p, column)` pairs (0 if never positive).
fn peak_of_total(profiles: &Profiles, parts: impl Iterator<Item = (f64, usize)> + Clone) -> f64 {
    (0..profiles.rows()).map(|t| parts.clone().map(|(p, col)| p * profiles.values(col)[t]).sum::<f64>()).fold(0.0, f64::max)
}

/// A bus-id range "a-b" (inclusive; an en dash works too).
fn parse_range(s: &str) -> Option<(i64, i64)> {
    let s = s.replace('–', "-");
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// Population standard deviation.
fn std_dev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt()
}

/// The first key (dotted path) holding an infinite or NaN number.
fn non_finite(v: &toml::Value, at: String) -> Option<String> {
    match v {
        toml::Value::Float(f) if !f.is_finite() => Some(at),
        toml::Value::Table(t) => t.iter().find_map(|(k, x)| non_finite(x, if at.is_empty() { k.clone() } else { format!("{at}.{k}") })),
        toml::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| non_finite(x, format!("{at}[{i}]"))),
        _ => None,
    }
}
