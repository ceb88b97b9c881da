//! [`Section`]: the options of one drbd.conf section, in the order written,
//! each with the place it was written.

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{ConfigError, Location};
use crate::options::units::{parse_scaled, Unit};

/// One option value as written (normalised: flags are "yes"/"no").
///
/// Equality compares the text only: where a value was written never makes
/// two models different.
#[derive(Debug, Clone)]
pub struct Value {
    text: String,
    at: Location,
}

impl Value {
    /// A value written at `at`.
    pub fn new(text: impl Into<String>, at: Location) -> Self {
        Value {
            text: text.into(),
            at,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where it was written.
    pub fn location(&self) -> &Location {
        &self.at
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Value {}

/// The location given to values built by code rather than read from a file.
pub fn builtin_location() -> Location {
    Location::new(Path::new("<built-in>").into(), 0, 0)
}

/// The options of one section. A name appears at most once: setting it again
/// replaces the value (the last one wins, as with drbdsetup).
///
/// Equality ignores order and source positions.
#[derive(Debug, Clone, Default)]
pub struct Section {
    entries: Vec<(String, Value)>,
}

impl PartialEq for Section {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .all(|(name, value)| other.value(name) == Some(value))
    }
}

impl Eq for Section {}

impl Section {
    /// An empty section.
    pub fn new() -> Self {
        Section::default()
    }

    /// The text of option `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.value(name).map(Value::as_str)
    }

    /// The value of option `name`, with its location.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Whether option `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// Sets option `name`, replacing an earlier value in place.
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Removes option `name`.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(index).1)
    }

    /// The options in the order they were first written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of options.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds every option of `defaults` that this section does not set
    /// (common-section inheritance: the resource's own value wins).
    pub fn inherit(&mut self, defaults: &Section) {
        for (name, value) in &defaults.entries {
            if !self.contains(name) {
                self.entries.push((name.clone(), value.clone()));
            }
        }
    }

    /// The options of this section whose value differs from `defaults`.
    pub fn without_inherited(&self, defaults: &Section) -> Section {
        Section {
            entries: self
                .entries
                .iter()
                .filter(|(n, v)| defaults.value(n) != Some(v))
                .cloned()
                .collect(),
        }
    }

    fn invalid(&self, name: &str, reason: String) -> ConfigError {
        let value = self.value(name);
        ConfigError::InvalidValue {
            at: value.map_or_else(builtin_location, |v| v.location().clone()),
            name: name.to_string(),
            value: value.map(|v| v.as_str().to_string()).unwrap_or_default(),
            reason,
        }
    }

    /// A yes/no option.
    pub fn get_bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some("yes") => Ok(Some(true)),
            Some("no") => Ok(Some(false)),
            Some(_) => Err(self.invalid(name, "expected yes or no".to_string())),
        }
    }

    /// A plain integer option (no unit suffix allowed).
    pub fn get_u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(name, "expected a whole number".to_string())),
        }
    }

    /// A number with an optional k/M/G/s suffix, converted to `unit`.
    pub fn get_scaled(&self, name: &str, unit: Unit) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => parse_scaled(text, unit)
                .map(Some)
                .map_err(|e| self.invalid(name, e.describe())),
        }
    }

    /// A size in bytes (a number with an optional k/M/G/s suffix).
    pub fn get_size_bytes(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        self.get_scaled(name, Unit::One)
    }

    /// An `IP:PORT` option.
    pub fn get_socket_addr(&self, name: &str) -> Result<Option<SocketAddr>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => super::address::parse_socket_addr(text)
                .map(Some)
                .map_err(|reason| self.invalid(name, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Value {
        Value::new(text, builtin_location())
    }

    #[test]
    fn last_value_wins_and_equality_ignores_order() {
        let mut a = Section::new();
        a.set("resync-rate", v("40M"));
        a.set("al-extents", v("517"));
        a.set("resync-rate", v("10M"));
        assert_eq!(a.get("resync-rate"), Some("10M"));
        assert_eq!(a.len(), 2);
        let mut b = Section::new();
        b.set("al-extents", v("517"));
        b.set("resync-rate", v("10M"));
        assert_eq!(a, b);
        b.set("al-extents", v("518"));
        assert_ne!(a, b);
    }

    #[test]
    fn inheritance_keeps_own_values() {
        let mut common = Section::new();
        common.set("max-buffers", v("8000"));
        common.set("protocol", v("A"));
        let mut own = Section::new();
        own.set("protocol", v("C"));
        own.inherit(&common);
        assert_eq!(own.get("protocol"), Some("C"));
        assert_eq!(own.get("max-buffers"), Some("8000"));
        assert_eq!(own.without_inherited(&common).len(), 1);
    }

    #[test]
    fn typed_getters_convert_units() {
        let mut s = Section::new();
        s.set("sndbuf-size", v("512k"));
        s.set("resync-rate", v("40M"));
        s.set("disk-flushes", v("no"));
        s.set("bad", v("12x"));
        assert_eq!(s.get_size_bytes("sndbuf-size").unwrap(), Some(524_288));
        assert_eq!(
            s.get_scaled("resync-rate", Unit::KiB).unwrap(),
            Some(40_960)
        );
        assert_eq!(s.get_bool("disk-flushes").unwrap(), Some(false));
        assert!(s.get_size_bytes("bad").is_err());
        assert_eq!(s.get_u64("missing").unwrap(), None);
    }
}
