//! drbd.conf and TOML configuration model and parsers for rdbd.
//!
//! - [`parse_drbd_conf`] reads drbd.conf exactly as DRBD 8.4 users write it
//!   (`global`, `common`, `resource`, `on`, `floating`, `include "glob";`,
//!   the 8.3 `syncer` section mapped the way drbdadm-84 maps it);
//! - [`parse_toml`] reads the same model from TOML with kebab-case keys;
//! - [`load`] picks the format by file extension (`.toml` → TOML);
//! - [`dump`] prints a model back as normalised drbd.conf, like `drbdadm dump`.
//!
//! Every DRBD 8.4 option is parsed, checked and kept; the ones rdbd acts on
//! are listed in [`options::IMPLEMENTED_OPTIONS`], the others are reported by
//! [`Config::unimplemented_options`]. Errors name `file:line:column`.
//!
//! Module map: [`error`] (the one error enum), [`options`] (option tables and
//! value checks), [`model`] (Config, Resource, Host, Section, Settings),
//! `drbdconf` and `toml_format` (the two parsers), `assemble` (inheritance and
//! cross checks shared by both), `dump`.

mod assemble;
mod drbdconf;
mod dump;
pub mod error;
pub mod model;
pub mod options;
mod toml_format;

use std::path::Path;

pub use drbdconf::{parse_drbd_conf, MAX_FILE_BYTES, MAX_INCLUDE_DEPTH, MAX_TOKEN_CHARS};
pub use dump::{dump, dump_on_host, escape};
pub use error::{ConfigError, Location};
pub use model::{
    AddressFamily, Config, Host, MetaDisk, Resource, ResourceDefaults, Section, Settings, Value,
};
pub use rdbd_types::Protocol;
pub use toml_format::parse_toml;

/// Reads the configuration at `path`: TOML when the file name ends in
/// `.toml`, drbd.conf syntax otherwise.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = drbdconf::read_text(path)?;
    if path.extension().is_some_and(|e| e == "toml") {
        parse_toml(&text, path)
    } else {
        parse_drbd_conf(&text, path)
    }
}
