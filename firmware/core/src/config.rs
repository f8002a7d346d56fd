//! The configuration directory: `voltage.yaml`, `comsrv/comsrv.yaml` and the per-channel point
//! tables, loaded into one validated [`Config`].
//!
//! Every key the files accept is honoured, and every unknown key, type or value is an error with
//! file, line and column. Loading never stops at the first error: check-config shows them all.
//! Defaults are spelled out in `config/` (the example configuration) and in [`ChannelParams`].

use crate::error::{ConfigError, ConfigErrors};
use crate::points::{self, MappingKind, Point, Source};
use crate::types::PointType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod board;
mod channel;
mod gateway;
mod hissrv;
mod netsrv;
pub mod schema;
mod serial;
mod tls;
mod voltage;
pub use board::*;
pub use channel::*;
pub use gateway::*;
pub use hissrv::*;
pub use netsrv::*;
pub use serial::*;
pub use tls::*;
pub use voltage::*;

pub(crate) fn yes() -> bool {
    true
}

/// `comsrv/comsrv.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComsrvFile {
    /// Watch the config directory and apply edits without a restart (default true).
    #[serde(default = "yes")]
    pub file_watch: bool,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
}

/// A channel with its points, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub config: ChannelConfig,
    pub points: Vec<Point>,
    /// Resolved line settings of a `modbus_rtu` channel.
    pub serial: Option<SerialSettings>,
}

impl Channel {
    pub fn id(&self) -> u32 {
        self.config.id
    }
}

/// What the command line adds to a configuration directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Board file to use instead of `voltage.yaml`'s `board:` (`voltage run --board`).
    pub board: Option<PathBuf>,
}

/// Everything the daemon needs from the configuration directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dir: PathBuf,
    /// How it was loaded (a reload after an edit uses the same options).
    pub options: LoadOptions,
    /// `voltage.yaml`, migrated to [`schema::CONFIG_SCHEMA`].
    pub voltage: VoltageConfig,
    /// The schema the file was written in, and the migration steps applied.
    pub migration: schema::Migration,
    /// The board file in effect, if any.
    pub board: Option<Board>,
    /// Resolved data directory (see [`VoltageConfig::data_dir`]).
    pub data_dir: PathBuf,
    pub file_watch: bool,
    pub channels: Vec<Channel>,
    /// `hissrv/hissrv.yaml` (absent = hissrv records nothing).
    pub hissrv: Option<HissrvConfig>,
    /// `netsrv/netsrv.yaml` (absent = nothing is forwarded northbound).
    pub netsrv: Option<NetsrvConfig>,
    /// `gateway/gateway.yaml` (absent = defaults: authentication on).
    pub gateway: GatewayConfig,
    /// Things that are legal but probably not meant (a point without mapping, ...).
    pub warnings: Vec<String>,
}

/// Parses YAML text into `T`, turning serde's error into a located [`ConfigError`].
pub fn parse_yaml<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<T, ConfigError> {
    serde_yaml_ng::from_str::<T>(text).map_err(|e| {
        let msg = strip_location(&e.to_string());
        match e.location() {
            Some(l) => ConfigError::at(file, l.line() as u64, l.column() as u64, msg),
            None => ConfigError::file(file, msg),
        }
    })
}

fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn read_optional(path: &Path, errors: &mut Vec<ConfigError>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            errors.push(ConfigError::file(
                path.display(),
                format!("cannot read: {e}"),
            ));
            None
        }
    }
}

/// Loads and validates the configuration directory `dir`.
pub fn load_dir(dir: &Path) -> Result<Config, ConfigErrors> {
    load_dir_with(dir, &LoadOptions::default())
}

/// [`load_dir`] with command-line options.
pub fn load_dir_with(dir: &Path, options: &LoadOptions) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let vpath = dir.join("voltage.yaml");
    let vfile = vpath.display().to_string();
    let vtext = read_optional(&vpath, &mut errors).unwrap_or_default();
    let mut voltage = if vtext.trim().is_empty() {
        VoltageConfig::default()
    } else {
        parse_yaml::<VoltageConfig>(&vfile, &vtext)
            .map_err(|e| errors.push(e))
            .unwrap_or_default()
    };
    let migration = schema::migrate(&mut voltage, &vfile, &vtext).unwrap_or_else(|e| {
        errors.push(e);
        schema::Migration {
            from: schema::CONFIG_SCHEMA,
            notes: Vec::new(),
        }
    });
    let cpath = dir.join("comsrv").join("comsrv.yaml");
    let cfile = cpath.display().to_string();
    let (file_watch, channel_cfgs, ctext) = match read_optional(&cpath, &mut errors) {
        None => {
            if voltage.services.comsrv.enabled && dir.join("comsrv").exists() {
                errors.push(ConfigError::file(
                    &cfile,
                    "missing: the comsrv directory needs comsrv.yaml",
                ));
            }
            (true, Vec::new(), String::new())
        }
        Some(t) if t.trim().is_empty() => (true, Vec::new(), t),
        Some(t) => match parse_yaml::<ComsrvFile>(&cfile, &t) {
            Ok(f) => (f.file_watch, f.channels, t),
            Err(e) => {
                errors.push(e);
                (true, Vec::new(), t)
            }
        },
    };
    let board_path = match (&options.board, &voltage.board) {
        (Some(p), _) => Some((p.clone(), "--board".to_string())),
        (None, Some(b)) => Some((dir.join(b), vfile.clone())),
        (None, None) => None,
    };
    let board = board_path.and_then(|(path, named_in)| {
        let file = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(t) => check_board(&file, &t).map_err(|e| errors.extend(e.0)).ok(),
            Err(e) => {
                errors.push(ConfigError::file(
                    named_in,
                    format!("board: cannot read {file}: {e}"),
                ));
                None
            }
        }
    });
    let defaults = board
        .as_ref()
        .map(|b| b.defaults.clone())
        .unwrap_or_default();
    if voltage.redis.is_none() {
        if let Some(url) = defaults.redis_url {
            voltage.redis = Some(RedisConfig { url });
        }
    }
    let data_dir = dir.join(
        voltage
            .data_dir
            .clone()
            .or(defaults.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
    );
    let mut channels = Vec::new();
    let mut lines: BTreeMap<String, (u32, SerialSettings)> = BTreeMap::new();
    let mut ids: BTreeMap<u32, usize> = BTreeMap::new();
    for (index, cfg) in channel_cfgs.into_iter().enumerate() {
        let line = channel_line(&ctext, cfg.id, index);
        if let Some(first) = ids.insert(cfg.id, index) {
            errors.push(ConfigError::at(
                &cfile,
                line,
                1,
                format!(
                    "channel id {} is used twice (channels[{first}] and channels[{index}])",
                    cfg.id
                ),
            ));
            continue;
        }
        let n = errors.len();
        cfg.validate(&cfile, line, &mut errors);
        if errors.len() > n {
            continue;
        }
        let serial = match cfg.protocol {
            Protocol::ModbusRtu => match resolve_serial(&cfg, board.as_ref()) {
                Ok(s) => {
                    if let Some((other, prev)) = lines.get(&s.device) {
                        if *prev != s {
                            errors.push(ConfigError::at(
                                &cfile,
                                line,
                                1,
                                format!(
                                    "channel {} shares {} with channel {other} but with other line settings ({} vs {})",
                                    cfg.id,
                                    s.device,
                                    s.describe(),
                                    prev.describe()
                                ),
                            ));
                        }
                    } else if cfg.enabled {
                        lines.insert(s.device.clone(), (cfg.id, s.clone()));
                    }
                    Some(s)
                }
                Err(m) => {
                    errors.push(ConfigError::at(
                        &cfile,
                        line,
                        1,
                        format!("channel {} (modbus_rtu): {m}", cfg.id),
                    ));
                    None
                }
            },
            _ => None,
        };
        let points = load_points(dir, &cfg, &mut errors, &mut warnings);
        if cfg.enabled && points.iter().all(|p| p.source.is_none()) {
            warnings.push(format!(
                "channel {} ({}) has no readable points",
                cfg.id, cfg.name
            ));
        }
        channels.push(Channel {
            config: cfg,
            points,
            serial,
        });
    }
    let hpath = dir.join("hissrv").join("hissrv.yaml");
    let hfile = hpath.display().to_string();
    let hissrv = read_optional(&hpath, &mut errors).and_then(|t| {
        match parse_yaml::<HissrvConfig>(&hfile, &t) {
            Ok(h) => {
                for m in h.problems() {
                    errors.push(ConfigError::file(&hfile, m));
                }
                for ch in h.sources.iter().filter_map(|s| s.channel) {
                    if !channels.iter().any(|c| c.id() == ch) {
                        errors.push(ConfigError::file(
                            &hfile,
                            format!("sources: channel {ch} is not configured in comsrv"),
                        ));
                    }
                }
                Some(h)
            }
            Err(e) => {
                errors.push(e);
                None
            }
        }
    });
    let npath = dir.join("netsrv").join("netsrv.yaml");
    let nfile = npath.display().to_string();
    let netsrv = read_optional(&npath, &mut errors).and_then(|t| {
        match parse_yaml::<NetsrvConfig>(&nfile, &t) {
            Ok(n) => {
                for m in n.problems() {
                    errors.push(ConfigError::file(&nfile, m));
                }
                if hissrv.is_none() {
                    errors.push(ConfigError::file(
                        &nfile,
                        "netsrv forwards the history log: configure hissrv/hissrv.yaml sources too",
                    ));
                }
                Some(n)
            }
            Err(e) => {
                errors.push(e);
                None
            }
        }
    });
    let gpath = dir.join("gateway").join("gateway.yaml");
    let gfile = gpath.display().to_string();
    let gateway = read_optional(&gpath, &mut errors)
        .and_then(|t| match parse_yaml::<GatewayConfig>(&gfile, &t) {
            Ok(g) => {
                for m in g.problems() {
                    errors.push(ConfigError::file(&gfile, m));
                }
                Some(g)
            }
            Err(e) => {
                errors.push(e);
                None
            }
        })
        .unwrap_or_default();
    if errors.is_empty() {
        Ok(Config {
            dir: dir.to_path_buf(),
            options: options.clone(),
            migration,
            board,
            data_dir,
            hissrv,
            netsrv,
            gateway,
            voltage,
            file_watch,
            channels,
            warnings,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Best-effort line of a channel entry in comsrv.yaml, for errors found after parsing.
fn channel_line(text: &str, id: u32, index: usize) -> u64 {
    let needle = format!("id: {id}");
    let mut hits = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t == needle
                || t.starts_with(&format!("{needle} "))
                || t.starts_with(&format!("{needle}#"))
        })
        .map(|(i, _)| i as u64 + 1);
    let first = hits.next();
    first
        .or_else(|| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.trim_start().starts_with("- "))
                .nth(index)
                .map(|(i, _)| i as u64 + 1)
        })
        .unwrap_or(1)
}

fn load_points(
    dir: &Path,
    cfg: &ChannelConfig,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<Point> {
    let cdir = dir.join("comsrv").join(cfg.id.to_string());
    let kind = match cfg.protocol {
        Protocol::Virtual => MappingKind::Virtual,
        Protocol::ModbusTcp | Protocol::ModbusRtu => MappingKind::Modbus,
        Protocol::Grpc => MappingKind::Plugin,
    };
    let mut tables = BTreeMap::new();
    let mut mappings = BTreeMap::new();
    let mut mapping_files = BTreeMap::new();
    for pt in PointType::ALL {
        let tpath = cdir.join(format!("{}.csv", pt.name()));
        if let Some(t) = read_optional(&tpath, errors) {
            tables.insert(
                pt,
                points::parse_table(pt, &tpath.display().to_string(), &t, errors),
            );
        }
        let mpath = cdir
            .join("mapping")
            .join(format!("{}_mapping.csv", pt.name()));
        let mfile = mpath.display().to_string();
        if let Some(t) = read_optional(&mpath, errors) {
            let m: BTreeMap<u32, (Source, u64)> = match kind {
                MappingKind::Modbus => points::parse_modbus_mapping(pt, &mfile, &t, errors)
                    .into_iter()
                    .map(|(id, (m, l))| (id, (Source::Modbus(m), l)))
                    .collect(),
                MappingKind::Virtual => points::parse_virtual_mapping(&mfile, &t, errors)
                    .into_iter()
                    .map(|(id, (p, l))| (id, (Source::Virtual(p), l)))
                    .collect(),
                MappingKind::Plugin => points::parse_plugin_mapping(&mfile, &t, errors)
                    .into_iter()
                    .map(|(id, (m, l))| (id, (Source::Plugin(m), l)))
                    .collect(),
            };
            mappings.insert(pt, m);
        }
        mapping_files.insert(pt, mfile);
    }
    let mut w = Vec::new();
    let points = points::join(tables, mappings, &mapping_files, errors, &mut w);
    warnings.extend(w.into_iter().map(|m| format!("channel {}: {m}", cfg.id)));
    points
}

#[cfg(test)]
mod tests;
