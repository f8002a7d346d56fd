//! Model templates (`DIR/modsrv/templates/{template_id}.yaml`) and their expansion.
//!
//! A template declares parameters (required, or with a default) and points; `${name}` in any
//! string of a point is replaced by the parameter's value, so one `battery_template` serves every
//! rack: `mapping: "comsrv:${channel}:T:${soc_point}"`. Expansion is pure and checked: an unknown
//! or missing parameter is an error naming it, never an empty substitution.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use voltage_core::config::parse_yaml;
use voltage_core::ConfigError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(default)]
    pub description: String,
    /// Used when the request does not give the parameter; without one it is required.
    pub default: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamSpec>,
    /// Each point is an object with at least `name`; any other fields are kept.
    pub points: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Loads every `*.yaml` of `dir` (none = no templates).
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Template>, Vec<ConfigError>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        let file = p.display().to_string();
        let id = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        match std::fs::read_to_string(&p) {
            Ok(t) => match parse(&file, &t) {
                Ok(tpl) => {
                    out.insert(id, tpl);
                }
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(ConfigError::file(&file, format!("cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Parses the text of one template file named `file` (the name is used in errors).
pub fn parse(file: &str, text: &str) -> Result<Template, Vec<ConfigError>> {
    let tpl = parse_yaml::<Template>(file, text).map_err(|e| vec![e])?;
    let errors: Vec<ConfigError> = tpl
        .points
        .iter()
        .enumerate()
        .filter(|(_, pt)| !pt.get("name").is_some_and(|n| n.is_string()))
        .map(|(i, _)| ConfigError::file(file, format!("points[{i}] needs a string \"name\"")))
        .collect();
    if errors.is_empty() {
        Ok(tpl)
    } else {
        Err(errors)
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn substitute(
    s: &str,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
        let name = &after[..end];
        let v = params.get(name).ok_or_else(|| {
            format!("template uses parameter {name:?}, which it does not declare")
        })?;
        out.push_str(&text(v));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_value(
    v: &serde_json::Value,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, String> {
    Ok(match v {
        serde_json::Value::String(s) => serde_json::Value::String(substitute(s, params)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| expand_value(x, params))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), expand_value(x, params)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

impl Template {
    /// The parameters with defaults applied; errors name the parameter.
    pub fn resolve(
        &self,
        given: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        for k in given.keys() {
            if !self.parameters.contains_key(k) {
                let known: Vec<&str> = self.parameters.keys().map(String::as_str).collect();
                return Err(format!(
                    "unknown parameter {k:?}; this template takes: {}",
                    known.join(", ")
                ));
            }
        }
        let mut out = serde_json::Map::new();
        for (k, spec) in &self.parameters {
            match given.get(k).or(spec.default.as_ref()) {
                Some(v) => {
                    out.insert(k.clone(), v.clone());
                }
                None => {
                    return Err(format!(
                        "missing parameter {k:?}{}",
                        if spec.description.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", spec.description)
                        }
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The points of a model with these (resolved) parameters.
    pub fn expand(
        &self,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<serde_json::Value>, String> {
        self.points
            .iter()
            .map(|p| expand_value(&serde_json::Value::Object(p.clone()), params))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl() -> Template {
        serde_yaml_ng::from_str(
            "name: t\nparameters:\n  channel: {default: 1001}\n  kv: {description: nominal kV}\npoints:\n  - {name: voltage_a, unit: kV, note: \"${kv} kV\", mapping: \"comsrv:${channel}:T:1\"}\n",
        )
        .unwrap()
    }

    #[test]
    fn parameters_are_substituted_and_defaults_applied() {
        let t = tpl();
        let p = t
            .resolve(serde_json::json!({"kv": 35}).as_object().unwrap())
            .unwrap();
        let pts = t.expand(&p).unwrap();
        assert_eq!(pts[0]["mapping"], "comsrv:1001:T:1");
        assert_eq!(pts[0]["note"], "35 kV");
    }

    #[test]
    fn unknown_and_missing_parameters_are_named() {
        let t = tpl();
        assert!(t
            .resolve(
                serde_json::json!({"kv": 1, "colour": "red"})
                    .as_object()
                    .unwrap()
            )
            .unwrap_err()
            .contains("\"colour\""));
        assert_eq!(
            t.resolve(&serde_json::Map::new()).unwrap_err(),
            "missing parameter \"kv\" (nominal kV)"
        );
    }
}
