//! An upstream's catalog as the gateway offers it: listed page by page
//! (following `nextCursor`), tools and prompts renamed `NAME__tool` when the
//! upstream is namespaced, resources and templates as they are (the
//! composite routes them back by URI). Also the naming rule — when one
//! upstream alone goes unprefixed — which tools are safe to call again
//! after an upstream restarted mid-call, and whether a URI matches one of
//! the upstream's templates.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rmcp::model::Tool;
use serde_json::{json, Value};
use sessiongate_mcp::{Capabilities, Catalog};

use crate::link::{Link, LinkError, OutboundId};

/// How the upstream's names appear to clients, once decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// `NAME` + separator + the upstream's name.
    Prefixed(String),
    /// As the upstream names them (one upstream, nothing to collide with).
    Bare,
}

/// The tool and prompt names served beside the upstreams (the built-ins'),
/// which a lone upstream must not take to go unprefixed.
#[derive(Debug, Clone, Default)]
pub struct Reserved {
    pub tools: HashSet<String>,
    pub prompts: HashSet<String>,
}

/// How an upstream's names are decided, before its catalog is read.
#[derive(Debug, Clone)]
pub enum NamingRule {
    /// Always prefixed (several upstreams).
    Prefixed(String),
    /// As the upstream names them unless one of its tool or prompt names is
    /// reserved, and then all prefixed, so that its names stay of a piece.
    /// Decided by the first catalog read and kept: names do not change
    /// under a client when the upstream's lists change later.
    BareUnlessReserved {
        prefix: String,
        reserved: Arc<Reserved>,
    },
}

impl NamingRule {
    /// The naming, when it does not depend on the catalog: prefixed, or
    /// bare with nothing reserved (no built-ins).
    pub fn fixed(&self) -> Option<Naming> {
        match self {
            NamingRule::Prefixed(prefix) => Some(Naming::Prefixed(prefix.clone())),
            NamingRule::BareUnlessReserved { reserved, .. }
                if reserved.tools.is_empty() && reserved.prompts.is_empty() =>
            {
                Some(Naming::Bare)
            }
            NamingRule::BareUnlessReserved { .. } => None,
        }
    }

    /// The naming for an upstream whose catalog, as it names things, is
    /// `listed`.
    pub(crate) fn decide(&self, listed: &Listed) -> Naming {
        match self {
            NamingRule::Prefixed(prefix) => Naming::Prefixed(prefix.clone()),
            NamingRule::BareUnlessReserved { prefix, .. } => match self.taken(listed).is_empty() {
                true => Naming::Bare,
                false => Naming::Prefixed(prefix.clone()),
            },
        }
    }

    /// The names of `listed` that are reserved, tools then prompts.
    pub(crate) fn taken(&self, listed: &Listed) -> Vec<String> {
        let NamingRule::BareUnlessReserved { reserved, .. } = self else {
            return Vec::new();
        };
        let tools = listed
            .catalog
            .tools
            .iter()
            .map(|t| t.name.as_ref())
            .filter(|name| reserved.tools.contains(*name));
        let prompts = listed
            .catalog
            .prompts
            .iter()
            .filter_map(|p| p["name"].as_str())
            .filter(|name| reserved.prompts.contains(*name));
        tools.chain(prompts).map(str::to_string).collect()
    }
}

impl Naming {
    pub fn outward(&self, name: &str) -> String {
        match self {
            Naming::Prefixed(prefix) => format!("{prefix}{name}"),
            Naming::Bare => name.to_string(),
        }
    }

    /// The upstream's name for a name a client used; `None` if it is not
    /// one of this upstream's.
    pub fn inward<'a>(&self, name: &'a str) -> Option<&'a str> {
        match self {
            Naming::Prefixed(prefix) => name.strip_prefix(prefix.as_str()),
            Naming::Bare => Some(name),
        }
    }
}

/// The catalog read from an upstream, as it names things until
/// [`renamed`](Listed::rename), and what else the relay needs from it.
pub(crate) struct Listed {
    pub catalog: Catalog,
    /// Upstream tool name → whether calling it twice is harmless
    /// (`readOnlyHint` or `idempotentHint`).
    pub retry_safe: HashMap<String, bool>,
}

impl Listed {
    /// Tools and prompts named as clients see them.
    pub fn rename(&mut self, naming: &Naming) {
        if *naming == Naming::Bare {
            return;
        }
        for tool in &mut self.catalog.tools {
            tool.name = naming.outward(&tool.name).into();
        }
        for prompt in &mut self.catalog.prompts {
            if let Some(name) = prompt["name"].as_str() {
                prompt["name"] = json!(naming.outward(name));
            }
        }
    }
}

/// What the upstream's `initialize` result says it serves.
pub(crate) fn capabilities(server: &Value) -> Capabilities {
    Capabilities {
        resources: server.get("resources").is_some(),
        prompts: server.get("prompts").is_some(),
        completions: server.get("completions").is_some(),
    }
}

/// Lists everything the upstream offers over `link`, named as the upstream
/// names it; each request carries `meta` as its `_meta` when given
/// (2026-07-28, which has no session).
pub(crate) async fn list(
    link: &dyn Link,
    next_id: &(dyn Fn() -> OutboundId + Sync),
    server: &Value,
    meta: Option<&Value>,
) -> Result<Listed, LinkError> {
    let all = |method, member| pages(link, next_id, method, member, meta);
    let mut catalog = Catalog::default();
    let mut retry_safe = HashMap::new();
    if server.get("tools").is_some() {
        for raw in all("tools/list", "tools").await? {
            let Some(name) = raw.get("name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let annotations = &raw["annotations"];
            let safe = annotations["readOnlyHint"] == json!(true)
                || annotations["idempotentHint"] == json!(true);
            retry_safe.insert(name.clone(), safe);
            match serde_json::from_value::<Tool>(raw) {
                Ok(tool) => catalog.tools.push(tool),
                Err(e) => {
                    tracing::warn!(tool = %name, "skipped an upstream tool that does not parse: {e}")
                }
            }
        }
    }
    if server.get("prompts").is_some() {
        let prompts = all("prompts/list", "prompts").await?;
        catalog.prompts = prompts
            .into_iter()
            .filter(|raw| raw.get("name").and_then(Value::as_str).is_some())
            .collect();
    }
    if server.get("resources").is_some() {
        catalog.resources = all("resources/list", "resources").await?;
        catalog.templates = all("resources/templates/list", "resourceTemplates").await?;
    }
    Ok(Listed {
        catalog,
        retry_safe,
    })
}

/// Every entry of a paginated list.
async fn pages(
    link: &dyn Link,
    next_id: &(dyn Fn() -> OutboundId + Sync),
    method: &str,
    member: &str,
    meta: Option<&Value>,
) -> Result<Vec<Value>, LinkError> {
    let mut entries = Vec::new();
    let mut cursor: Option<Value> = None;
    // Bounded: an upstream handing out cursors forever must not hang us.
    for _ in 0..1000 {
        let mut params = serde_json::Map::new();
        if let Some(c) = cursor.take() {
            params.insert("cursor".into(), c);
        }
        if let Some(meta) = meta {
            params.insert("_meta".into(), meta.clone());
        }
        let params = (!params.is_empty()).then_some(Value::Object(params));
        let mut page = link.request(next_id(), method, params.as_ref()).await?;
        if let Some(Value::Array(items)) = page.get_mut(member).map(Value::take) {
            entries.extend(items);
        }
        match page.get("nextCursor") {
            Some(c) if !c.is_null() => cursor = Some(c.clone()),
            _ => return Ok(entries),
        }
    }
    Ok(entries)
}

/// The URIs of the resources `catalog` lists.
pub(crate) fn resource_uris(catalog: &Catalog) -> Vec<&str> {
    catalog
        .resources
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect()
}

/// Whether `uri` is one of the resources `catalog` lists or matches one of
/// its templates.
pub(crate) fn owns_uri(catalog: &Arc<Catalog>, uri: &str) -> bool {
    catalog.resource(uri).is_some()
        || catalog.templates.iter().any(|t| {
            t["uriTemplate"]
                .as_str()
                .is_some_and(|template| matches_template(template, uri))
        })
}

/// A URI against an RFC 6570 template, as far as matching needs: the
/// literal parts must appear in order, each expression matching any text.
fn matches_template(template: &str, uri: &str) -> bool {
    let mut literals = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        literals.push(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => return false,
        }
    }
    let last = rest;
    let Some(first) = literals.first() else {
        return template == uri;
    };
    let Some(mut remaining) = uri.strip_prefix(first) else {
        return false;
    };
    for literal in &literals[1..] {
        match remaining.find(literal) {
            Some(at) => remaining = &remaining[at + literal.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_their_uris_only() {
        assert!(matches_template("file:///{path}", "file:///a/b.txt"));
        assert!(matches_template("db://{table}/rows/{id}", "db://t/rows/7"));
        assert!(!matches_template("db://{table}/rows/{id}", "db://t/cols/7"));
        assert!(!matches_template("x://fixed", "x://other"));
        assert!(matches_template("x://fixed", "x://fixed"));
        assert!(!matches_template("x://{a}.json", "x://a.txt"));
    }

    #[test]
    fn names_go_out_prefixed_and_come_back_stripped() {
        let naming = Naming::Prefixed("echo__".into());
        assert_eq!(naming.outward("say"), "echo__say");
        assert_eq!(naming.inward("echo__say"), Some("say"));
        assert_eq!(naming.inward("other__say"), None);
        assert_eq!(Naming::Bare.inward("say"), Some("say"));
    }

    fn listed(tools: &[&str], prompts: &[&str]) -> Listed {
        let tool = |name: &str| {
            serde_json::from_value::<Tool>(json!({"name": name, "inputSchema": {"type": "object"}}))
                .unwrap()
        };
        Listed {
            catalog: Catalog {
                tools: tools.iter().map(|n| tool(n)).collect(),
                prompts: prompts.iter().map(|n| json!({ "name": n })).collect(),
                ..Catalog::default()
            },
            retry_safe: HashMap::new(),
        }
    }

    #[test]
    fn a_lone_upstream_is_prefixed_only_when_it_takes_a_reserved_name() {
        let reserved = Reserved {
            tools: HashSet::from(["echo".to_string()]),
            prompts: HashSet::from(["greet".to_string()]),
        };
        let rule = NamingRule::BareUnlessReserved {
            prefix: "up__".into(),
            reserved: Arc::new(reserved),
        };
        assert_eq!(rule.fixed(), None, "it depends on the catalog");
        // A tool named as a reserved prompt takes nothing: other namespace.
        assert_eq!(
            rule.decide(&listed(&["add", "greet"], &["echo"])),
            Naming::Bare
        );
        let taking = listed(&["add", "echo"], &["greet"]);
        assert_eq!(rule.taken(&taking), ["echo", "greet"]);
        let naming = rule.decide(&taking);
        assert_eq!(naming, Naming::Prefixed("up__".into()));
        let mut renamed = taking;
        renamed.rename(&naming);
        assert_eq!(renamed.catalog.tools[0].name, "up__add");
        assert_eq!(renamed.catalog.prompts[0]["name"], "up__greet");

        let nothing = NamingRule::BareUnlessReserved {
            prefix: "up__".into(),
            reserved: Arc::default(),
        };
        assert_eq!(nothing.fixed(), Some(Naming::Bare));
    }
}
