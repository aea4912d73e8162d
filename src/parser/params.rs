//! A workflow's typed run parameters (CONTRACT §4.1): what `params:` declares, checked at
//! import, and the values of one run resolved from what a start gave (each checked against its
//! type and choices, defaults filled in, required ones demanded).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The most parameters a workflow declares, and the longest value one takes.
pub const MAX_PARAMS: usize = 64;
pub const MAX_VALUE_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Date => "date",
            ParamType::Timestamp => "timestamp",
        }
    }

    /// What a value of this type looks like, for error messages.
    fn shape(self) -> &'static str {
        match self {
            ParamType::String => "text",
            ParamType::Int => "a whole number",
            ParamType::Float => "a number",
            ParamType::Bool => "true or false",
            ParamType::Date => "a date, YYYY-MM-DD",
            ParamType::Timestamp => "an RFC 3339 time, 2026-01-31T02:00:00Z",
        }
    }

    /// `text` as a value of this type (its text form), or why not.
    pub fn check(self, text: &str) -> Result<String, String> {
        let ok = match self {
            ParamType::String => true,
            ParamType::Int => text.parse::<i64>().is_ok(),
            ParamType::Float => text.parse::<f64>().is_ok_and(f64::is_finite),
            ParamType::Bool => text == "true" || text == "false",
            ParamType::Date => text.parse::<jiff::civil::Date>().is_ok() && text.len() == 10,
            ParamType::Timestamp => text.parse::<jiff::Timestamp>().is_ok(),
        };
        if text.len() > MAX_VALUE_BYTES || text.contains('\0') {
            return Err(format!(
                "a value is at most {MAX_VALUE_BYTES} bytes of text without NUL"
            ));
        }
        if ok {
            Ok(text.to_owned())
        } else {
            Err(format!(
                "expected {} ({}), got {text:?}",
                self.as_str(),
                self.shape()
            ))
        }
    }
}

/// A scalar as written (`1000`, `false`, `eu`), kept as its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ParamValue(pub String);

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Bool(bool),
            Int(i64),
            Float(f64),
            Text(String),
        }
        Ok(ParamValue(match Scalar::deserialize(d)? {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s,
        }))
    }
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDef {
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ParamValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<ParamValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// Why a declaration or a run's values are wrong, naming the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError(pub String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn env_safe(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The declarations' own rules: names usable in `PINBALL_PARAM_<name>`, defaults and choices
/// of their type, a default among the choices, `required` without a default; a scheduled
/// workflow's parameters all have a value without one (its runs are started by nobody).
pub fn check_declarations(
    params: &BTreeMap<String, ParamDef>,
    scheduled: bool,
) -> Result<(), ParamError> {
    if params.len() > MAX_PARAMS {
        return Err(ParamError(format!(
            "declares {} params; at most {MAX_PARAMS}",
            params.len()
        )));
    }
    for (name, p) in params {
        let at = |m: String| ParamError(format!("param {name}: {m}"));
        if !env_safe(name) {
            return Err(at("a name is letters, digits and _, not starting with a digit, at most 64 (it becomes PINBALL_PARAM_<name>)".into()));
        }
        for c in &p.choices {
            p.kind.check(&c.0).map_err(|e| at(format!("choice: {e}")))?;
        }
        if let Some(d) = &p.default {
            p.kind
                .check(&d.0)
                .map_err(|e| at(format!("default: {e}")))?;
            if !p.choices.is_empty() && !p.choices.contains(d) {
                return Err(at(format!("default {:?} is not one of its choices", d.0)));
            }
            if p.required {
                return Err(at("required and a default exclude each other: a required param has no default, a start gives it".into()));
            }
        }
        if p.required && scheduled {
            return Err(at("is required, and the workflow's schedule starts runs that nobody gives it: give it a default".into()));
        }
    }
    Ok(())
}

/// A run's values: `given` checked against `params` (unknown names, types, choices), defaults
/// for the rest, required ones demanded.
pub fn resolve(
    params: &BTreeMap<String, ParamDef>,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ParamError> {
    if let Some(unknown) = given.keys().find(|k| !params.contains_key(*k)) {
        let known: Vec<&str> = params.keys().map(String::as_str).collect();
        return Err(ParamError(if known.is_empty() {
            format!("unknown param {unknown}: the workflow declares none")
        } else {
            format!(
                "unknown param {unknown}: the workflow declares {}",
                known.join(", ")
            )
        }));
    }
    let mut values = BTreeMap::new();
    for (name, p) in params {
        let at = |m: String| ParamError(format!("param {name}: {m}"));
        let value = match (given.get(name), &p.default) {
            (Some(v), _) => p.kind.check(v).map_err(at)?,
            (None, Some(d)) => d.0.clone(),
            (None, None) if p.required => {
                return Err(at(format!(
                    "is required: give -p {name}=VALUE ({})",
                    p.kind.as_str()
                )));
            }
            (None, None) => continue,
        };
        if !p.choices.is_empty() && !p.choices.iter().any(|c| c.0 == value) {
            let choices: Vec<&str> = p.choices.iter().map(|c| c.0.as_str()).collect();
            return Err(at(format!(
                "{value:?} is not one of {}",
                choices.join(", ")
            )));
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(yaml: &str) -> BTreeMap<String, ParamDef> {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn every_type_checks_its_values() {
        use ParamType::*;
        for (t, good, bad) in [
            (Int, "42", "4.2"),
            (Float, "4.2", "x"),
            (Bool, "true", "yes"),
            (Date, "2026-01-31", "2026-1-31"),
            (Timestamp, "2026-01-31T02:00:00Z", "2026-01-31"),
        ] {
            assert_eq!(t.check(good), Ok(good.to_owned()), "{t:?}");
            let e = t.check(bad).unwrap_err();
            assert!(e.contains(t.as_str()) && e.contains(bad), "{e}");
        }
        assert!(String.check("any text").is_ok());
        assert!(String.check(&"x".repeat(MAX_VALUE_BYTES + 1)).is_err());
    }

    #[test]
    fn declarations_are_checked_and_runs_resolved() {
        let p = declared(
            "region: {type: string, default: eu, choices: [eu, us]}\nlimit: {type: int, default: 1000}\nfull: {type: bool, default: false}\nday: {type: date, required: true}\n",
        );
        assert_eq!(p["limit"].default, Some(ParamValue("1000".into())));
        check_declarations(&p, false).unwrap();
        let e = check_declarations(&p, true).unwrap_err().0;
        assert!(e.starts_with("param day: is required"), "{e}");
        let given = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let run = resolve(&p, &given(&[("day", "2026-02-01"), ("limit", "5")])).unwrap();
        assert_eq!(
            run,
            given(&[
                ("day", "2026-02-01"),
                ("full", "false"),
                ("limit", "5"),
                ("region", "eu")
            ])
        );
        for (kv, says) in [
            (&[("limit", "many")][..], "param day: is required"),
            (
                &[("day", "2026-02-01"), ("limit", "many")],
                "param limit: expected int",
            ),
            (
                &[("day", "2026-02-01"), ("region", "mars")],
                "\"mars\" is not one of eu, us",
            ),
            (
                &[("day", "2026-02-01"), ("nope", "1")],
                "unknown param nope",
            ),
        ] {
            let e = resolve(&p, &given(kv)).unwrap_err().0;
            assert!(e.contains(says), "{kv:?}: {e}");
        }
        for (yaml, says) in [
            (
                "x: {type: int, default: abc}",
                "param x: default: expected int",
            ),
            ("x: {type: text}", "unknown variant"),
            (
                "x: {type: int, default: 3, choices: [1, 2]}",
                "not one of its choices",
            ),
            ("1x: {type: int}", "letters, digits and _"),
            (
                "x: {type: int, default: 1, required: true}",
                "exclude each other",
            ),
        ] {
            let e = match serde_yaml::from_str::<BTreeMap<String, ParamDef>>(yaml) {
                Ok(p) => check_declarations(&p, false).unwrap_err().0,
                Err(e) => e.to_string(),
            };
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }
}
