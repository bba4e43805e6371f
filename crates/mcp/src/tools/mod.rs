//! Tools the server offers on its own: the built-in ones every deployment
//! has, and (behind `--conformance`) the fixtures of the official suite.

mod builtin;
mod conformance;
mod helpers;

pub use builtin::with_builtin_tools;
pub use conformance::{list_changes as conformance_list_changes, with_conformance_fixtures};
pub use helpers::{json_result, schema, string_arg, text_result};
