//! The fixture resources: two static ones, one to subscribe to, and a
//! template whose `{id}` is any path segment.

use async_trait::async_trait;
use rmcp::model::ErrorData;
use serde_json::{json, Value};

use super::media::PNG;
use crate::context::RequestContext;
use crate::server::ResourceProvider;

/// A static resource and its contents.
struct StaticResource {
    uri: &'static str,
    name: &'static str,
    title: &'static str,
    description: &'static str,
    mime_type: &'static str,
    body: Body,
}

enum Body {
    Text(&'static str),
    /// Base64.
    Blob(&'static str),
}

const RESOURCES: &[StaticResource] = &[
    StaticResource {
        uri: "test://static-text",
        name: "static-text",
        title: "Static Text Resource",
        description: "A static text resource for testing",
        mime_type: "text/plain",
        body: Body::Text("This is the content of the static text resource."),
    },
    StaticResource {
        uri: "test://static-binary",
        name: "static-binary",
        title: "Static Binary Resource",
        description: "A static binary resource (image) for testing",
        mime_type: "image/png",
        body: Body::Blob(PNG),
    },
    StaticResource {
        uri: "test://watched-resource",
        name: "watched-resource",
        title: "Watched Resource",
        description: "A resource to subscribe to",
        mime_type: "text/plain",
        body: Body::Text("Watched resource content"),
    },
];

/// The resource template: `{id}` is any non-empty path segment.
const TEMPLATE: (&str, &str) = ("test://template/", "/data");

pub(super) struct Resources;

#[async_trait]
impl ResourceProvider for Resources {
    fn resources(&self) -> Vec<Value> {
        RESOURCES
            .iter()
            .map(|r| {
                json!({
                    "uri": r.uri,
                    "name": r.name,
                    "title": r.title,
                    "description": r.description,
                    "mimeType": r.mime_type,
                })
            })
            .collect()
    }

    fn templates(&self) -> Vec<Value> {
        vec![json!({
            "uriTemplate": format!("{}{{id}}{}", TEMPLATE.0, TEMPLATE.1),
            "name": "template",
            "title": "Resource Template",
            "description": "A resource template with parameter substitution",
            "mimeType": "application/json",
        })]
    }

    async fn read(&self, _: &RequestContext, uri: &str) -> Result<Option<Vec<Value>>, ErrorData> {
        if let Some(r) = RESOURCES.iter().find(|r| r.uri == uri) {
            let (key, value) = match r.body {
                Body::Text(text) => ("text", text),
                Body::Blob(blob) => ("blob", blob),
            };
            return Ok(Some(vec![
                json!({ "uri": uri, "mimeType": r.mime_type, key: value }),
            ]));
        }
        let id = uri
            .strip_prefix(TEMPLATE.0)
            .and_then(|rest| rest.strip_suffix(TEMPLATE.1))
            .filter(|id| !id.is_empty() && !id.contains('/'));
        Ok(id.map(|id| {
            let data =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            vec![json!({ "uri": uri, "mimeType": "application/json", "text": data.to_string() })]
        }))
    }
}
