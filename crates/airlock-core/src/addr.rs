//! Canonical resource addresses: `provider:kind/name`.
//!
//! Every address is canonical before anything decides on it, so no policy can be
//! dodged by spelling: lower case, no surrounding space, no trailing separator, and
//! kind aliases (`svc`, `env`) resolved to their canonical names.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The address of one resource, e.g. `sim:service/checkout`. The name may have segments
/// separated by `/` (`aws:stack/us-east-1/billing-prod`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceAddr {
    provider: String,
    kind: String,
    name: String,
}

/// Why a string is not a resource address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("resource address `{0}` is not of the form `provider:kind/name`")]
    Shape(String),
    #[error(
        "resource address `{addr}` has an invalid character in its {part}: use a-z, 0-9, `-`, `_` and `.`"
    )]
    Character { addr: String, part: &'static str },
}

fn canonical_kind(kind: &str) -> &str {
    match kind {
        "svc" | "services" => "service",
        "env" | "envs" | "environments" => "environment",
        other => other,
    }
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

impl ResourceAddr {
    /// Builds an address from its parts, canonicalizing them.
    pub fn new(provider: &str, kind: &str, name: &str) -> Result<Self, AddrError> {
        format!("{provider}:{kind}/{name}").parse()
    }
    /// The provider part (`sim`).
    pub fn provider(&self) -> &str {
        &self.provider
    }
    /// The kind part (`service`).
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The name part (`checkout`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Longest name part [`addr_name`] produces.
const MAX_NAME: usize = 100;

/// Turns free text (a path, a tool argument, a program name) into a valid address name
/// part: lower-case, characters outside `[a-z0-9._-]` become `-`, repeats collapse, `-`
/// is trimmed at both ends, at most 100 characters, and empty becomes `unnamed`.
pub fn addr_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_NAME));
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
        if out.len() >= MAX_NAME {
            break;
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "unnamed".to_string()
    } else {
        trimmed.to_string()
    }
}

// On the wire an address is its canonical string.
impl utoipa::PartialSchema for ResourceAddr {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "A resource address `provider:kind/name`, e.g. `sim:service/checkout`. Made \
                 canonical before anything decides on it: lower case, surrounding space and a \
                 trailing `/` dropped, kind aliases resolved (`svc` → `service`, `env` → \
                 `environment`). Each part is a-z, 0-9, `-`, `_`, `.`; the name may have \
                 segments separated by `/` (`aws:stack/us-east-1/billing-prod`).",
            ))
            .examples(["sim:service/checkout"])
            .into()
    }
}

impl utoipa::ToSchema for ResourceAddr {}

impl FromStr for ResourceAddr {
    type Err = AddrError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let lowered = raw.trim().to_ascii_lowercase();
        let s = lowered.trim_end_matches('/');
        let (provider, rest) = s
            .split_once(':')
            .ok_or_else(|| AddrError::Shape(raw.to_string()))?;
        let (kind, name) = rest
            .split_once('/')
            .ok_or_else(|| AddrError::Shape(raw.to_string()))?;
        let kind = canonical_kind(kind.trim());
        let (provider, name) = (provider.trim(), name.trim());
        for (part, value) in [("provider", provider), ("kind", kind), ("name", name)] {
            if value.is_empty() {
                return Err(AddrError::Shape(raw.to_string()));
            }
            // A name may have segments (`us-east-1/billing-prod`: a region, then a name);
            // each segment is a valid part, so `a//b` and `a/ b` are refused.
            let valid = if part == "name" {
                value.split('/').all(valid_part)
            } else {
                valid_part(value)
            };
            if !valid {
                return Err(AddrError::Character {
                    addr: raw.to_string(),
                    part,
                });
            }
        }
        Ok(Self {
            provider: provider.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for ResourceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.provider, self.kind, self.name)
    }
}

impl Serialize for ResourceAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spellings_resolve_to_one_address() {
        let canonical: ResourceAddr = "sim:service/checkout".parse().unwrap();
        for spelling in [
            "SIM:Service/Checkout",
            " sim:svc/checkout/ ",
            "sim:services/checkout//",
        ] {
            assert_eq!(
                spelling.parse::<ResourceAddr>().unwrap(),
                canonical,
                "{spelling}"
            );
        }
    }

    #[test]
    fn malformed_addresses_are_rejected_with_a_reason() {
        let err = "checkout".parse::<ResourceAddr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource address `checkout` is not of the form `provider:kind/name`"
        );
        assert!(matches!(
            "sim:service/a b".parse::<ResourceAddr>(),
            Err(AddrError::Character { .. })
        ));
        assert!("sim:/x".parse::<ResourceAddr>().is_err());
        // Segmented names: each segment must be a valid part.
        let a: ResourceAddr = "AWS:Stack/US-East-1/Billing-Prod/".parse().unwrap();
        assert_eq!(a.to_string(), "aws:stack/us-east-1/billing-prod");
        assert_eq!(a.name(), "us-east-1/billing-prod");
        assert!("aws:stack/us-east-1//x".parse::<ResourceAddr>().is_err());
        assert!("aws:stack/us-east-1/ x".parse::<ResourceAddr>().is_err());
        assert!(":service/x".parse::<ResourceAddr>().is_err());
    }

    #[test]
    fn addr_name_sanitizes() {
        assert_eq!(addr_name("/tmp/build"), "tmp-build");
        assert_eq!(addr_name("Users  Table!!"), "users-table");
        assert_eq!(addr_name(""), "unnamed");
        assert_eq!(addr_name("///"), "unnamed");
        assert_eq!(addr_name("a.b_c-d"), "a.b_c-d");
        assert_eq!(addr_name(&"x".repeat(300)).len(), 100);
        assert_eq!(addr_name("é-über"), "ber");
    }

    proptest! {
        #[test]
        fn parse_then_print_is_identity(p in "[a-z][a-z0-9]{0,6}", k in "[a-z]{1,8}", n in "[a-z0-9][a-z0-9._-]{0,12}") {
            let a: ResourceAddr = format!("{p}:{k}/{n}").parse().unwrap();
            let again: ResourceAddr = a.to_string().parse().unwrap();
            prop_assert_eq!(a, again);
        }

        #[test]
        fn addr_name_always_gives_a_valid_name_part(raw in any::<String>()) {
            let name = addr_name(&raw);
            prop_assert!(valid_part(&name), "{:?} gave {:?}", raw, name);
            prop_assert!(name.len() <= MAX_NAME);
            prop_assert!(ResourceAddr::new("p", "k", &name).is_ok());
        }
    }
}
