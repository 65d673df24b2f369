//! Durations written as `90`, `"45s"`, `"30m"`, `"2h"` or `"1d"`: in scenario files, configs
//! and API parameters. Only parsing and printing; no clock.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A whole number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Secs(pub u64);

impl schemars::JsonSchema for Secs {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: whole seconds (`90`) or numbers with units s, m, h, d (`\"45s\"`, `\"1h30m\"`, `\"2d\"`).",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*([0-9]+|([0-9]+[smhd])+)\\s*$"}
            ]
        })
    }
}

impl Secs {
    /// Milliseconds.
    pub fn ms(self) -> i64 {
        (self.0 as i64).saturating_mul(1000)
    }
    /// Parses `45s`, `30m`, `2h`, `1d`, compounds such as `1h30m`, or a bare number of seconds.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = |why: &str| format!("invalid duration `{s}`: {why}, e.g. `90s`, `30m`, `1h30m`");
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Secs(n));
        }
        let (mut total, mut num) = (0u64, String::new());
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let mul = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(bad("units are s, m, h and d")),
            };
            let n: u64 = num
                .parse()
                .map_err(|_| bad("a number must come before each unit"))?;
            total = n
                .checked_mul(mul)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| bad("too long"))?;
            num.clear();
        }
        if !num.is_empty() {
            return Err(bad("the last number has no unit"));
        }
        Ok(Secs(total))
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s > 0 && s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s > 0 && s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for Secs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Secs(n)),
            Raw::S(s) => Secs::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_units() {
        assert_eq!(Secs::parse("90").unwrap(), Secs(90));
        assert_eq!(Secs::parse("30m").unwrap(), Secs(1800));
        assert_eq!(Secs::parse("2h").unwrap(), Secs(7200));
        assert!(Secs::parse("2w").is_err());
        assert!(Secs::parse("m").is_err());
        assert_eq!(Secs::parse("7h30m").unwrap(), Secs(27_000));
        assert!(Secs::parse("1h30").is_err());
        assert_eq!(Secs(5400).to_string(), "90m");
    }
}
