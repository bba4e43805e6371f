//! The fixtures of the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`), served only with
//! `serve --conformance`: the tools, resources, resource template, prompts
//! and argument completions its server scenarios call, with the names,
//! arguments and result shapes those scenarios check.
//!
//! Everything is table-driven, one module per kind: [`tools`] lists the
//! tools (static content, logging, progress, sampling, elicitation, ...),
//! [`input_required`] the tools and the prompt that ask for input in
//! multi-round-trip requests, [`resources`] the static resources and the
//! template, [`prompts`] the prompts, [`completions`] the argument
//! suggestions and [`tasks`] the tools of the tasks extension's scenarios.
//! [`changes`] is a service of its own whose lists change on demand.
//! `scripts/conformance` runs the suite against them.

mod changes;
mod completions;
mod input_required;
mod media;
mod prompts;
mod resources;
mod tasks;
mod tools;

use std::sync::Arc;

use crate::server::McpServer;
use crate::service::Service;

/// The fixture service whose tool and prompt lists change when its
/// trigger tools are called; it goes beside the server the other fixtures
/// are added to.
pub fn list_changes() -> Arc<dyn Service> {
    Arc::new(changes::ListChanges::new())
}

/// Adds every conformance fixture to a server.
pub fn with_conformance_fixtures(server: McpServer) -> McpServer {
    let server = tools::FIXTURES.iter().fold(server, McpServer::with_tool);
    let server = tasks::TASK_FIXTURES
        .iter()
        .fold(server, McpServer::with_tool);
    let server = input_required::INPUT_FIXTURES
        .iter()
        .fold(server, McpServer::with_tool);
    prompts::PROMPTS
        .iter()
        .fold(server, McpServer::with_prompt)
        .with_prompt(input_required::InputRequiredPrompt)
        .with_resources(resources::Resources)
        .with_completer(completions::Completions)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::media::{PNG, WAV};
    use super::prompts::PROMPTS;
    use super::tools::FIXTURES;
    use super::*;
    use crate::dispatch::{Dispatcher, ServerInfo};
    use crate::server::{PromptHandler, ToolHandler};

    fn decode(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("valid base64")
    }

    #[test]
    fn binary_fixtures_are_valid_png_and_wav() {
        let png = decode(PNG);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.ends_with(b"IEND\xae\x42\x60\x82"));
        let wav = decode(WAV);
        assert_eq!((&wav[..4], &wav[8..16]), (&b"RIFF"[..], &b"WAVEfmt "[..]));
        let riff_len = u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize;
        let data_len = u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize;
        assert_eq!((riff_len + 8, 44 + data_len), (wav.len(), wav.len()));
    }

    #[test]
    fn every_listing_is_well_formed() {
        let server = with_conformance_fixtures(McpServer::new());
        let caps = Dispatcher::new(ServerInfo::new("t", "0"), Arc::new(server)).capabilities(false);
        for key in ["tools", "resources", "prompts", "completions", "logging"] {
            assert!(caps.get(key).is_some(), "{key}");
        }
        for fixture in FIXTURES {
            let tool = fixture.tool();
            assert!(!fixture.description.is_empty());
            assert_eq!(tool.input_schema["type"], "object", "{}", fixture.name);
        }
        for fixture in input_required::INPUT_FIXTURES {
            assert!(fixture.name.starts_with("test_input_required_result_"));
            assert!(!fixture.description.is_empty());
        }
        for prompt in PROMPTS {
            assert!(!prompt.prompt()["description"].as_str().unwrap().is_empty());
        }
    }
}
