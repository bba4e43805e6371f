//! The tool mix: which tools the clients call and with what arguments,
//! chosen from the server's `tools/list` or named on the command line, and
//! the `Mcp-Param-*` headers 2026-07-28 mirrors from `x-mcp-header`
//! annotations.

use std::borrow::Cow;

use reqwest::header::HeaderName;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::mcp_client::{mirrored_header, Extra, Failure};
use crate::Error;

/// One tool of the mix.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    args: Value,
    /// String arguments filled with a fresh text on every call; an `echo`
    /// tool's answer must carry that text back.
    fill: Vec<String>,
    /// `Mcp-Param-{header}` from the argument at `path`.
    headers: Vec<(HeaderName, Vec<String>)>,
}

/// The tools clients call, in turn.
#[derive(Debug, Clone)]
pub struct ToolMix {
    tools: Vec<Tool>,
}

/// The arguments and extra headers of one call.
pub struct Call<'a> {
    pub tool: &'a Tool,
    pub args: Value,
    pub headers: Extra,
    /// The text an echo tool must return.
    pub expect: Option<String>,
}

impl ToolMix {
    /// Builds the mix from `--tool`/`--args`, or picks a tool from `listed`
    /// (the server's `tools/list` result's tools).
    pub fn choose(names: &[String], args: &[String], listed: &[Value]) -> Result<ToolMix, Error> {
        let schema_of = |name: &str| {
            listed
                .iter()
                .find(|t| t["name"] == name)
                .map(|t| t["inputSchema"].clone())
                .unwrap_or(Value::Null)
        };
        let mut tools = Vec::new();
        if names.is_empty() {
            let pick = listed
                .iter()
                .find(|t| t["name"] == "echo")
                .or_else(|| {
                    listed
                        .iter()
                        .find(|t| required(&t["inputSchema"]).is_empty())
                })
                .ok_or_else(|| {
                    Error::Setup(
                        "the server lists no echo tool and none without required arguments; \
                         name one with --tool NAME --args JSON"
                            .into(),
                    )
                })?;
            let name = pick["name"].as_str().unwrap_or_default();
            tools.push(Tool::new(name, None, &pick["inputSchema"])?);
        } else {
            for (i, name) in names.iter().enumerate() {
                let given = args
                    .get(i)
                    .map(|a| {
                        serde_json::from_str::<Value>(a)
                            .ok()
                            .filter(Value::is_object)
                            .ok_or_else(|| {
                                Error::Options(format!("--args {a:?} is not a JSON object"))
                            })
                    })
                    .transpose()?;
                tools.push(Tool::new(name, given, &schema_of(name))?);
            }
        }
        Ok(ToolMix { tools })
    }

    /// The `n`th call's tool and arguments; `text` is unique to the call.
    pub fn call(&self, n: u64, text: &str) -> Call<'_> {
        let tool = &self.tools[(n % self.tools.len() as u64) as usize];
        let mut args = tool.args.clone();
        for field in &tool.fill {
            args[field.as_str()] = Value::String(text.to_string());
        }
        let headers = tool
            .headers
            .iter()
            .filter_map(|(name, path)| {
                let v = path.iter().try_fold(&args, |v, key| v.get(key))?;
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((name.clone(), mirrored_header(&s)))
            })
            .collect();
        let expect = (tool.name == "echo" && !tool.fill.is_empty()).then(|| text.to_string());
        Call {
            tool,
            args,
            headers,
            expect,
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.name.clone()).collect()
    }
}

impl Tool {
    fn new(name: &str, given: Option<Value>, schema: &Value) -> Result<Tool, Error> {
        let mut headers = Vec::new();
        collect_headers(schema, &mut Vec::new(), &mut headers)
            .map_err(|e| Error::Setup(format!("tool {name}: {e}")))?;
        let (args, fill) = match given {
            Some(args) => (args, Vec::new()),
            None => {
                // Fill what the tool requires with text; an echo tool without
                // a schema gets the usual `text`.
                let props = &schema["properties"];
                let mut fill: Vec<String> = required(schema)
                    .into_iter()
                    .filter(|f| props[f.as_str()]["type"] == "string")
                    .collect();
                if fill.is_empty() && name == "echo" {
                    fill.push(if props.get("message").is_some() {
                        "message".into()
                    } else {
                        "text".into()
                    });
                }
                (Value::Object(Map::new()), fill)
            }
        };
        Ok(Tool {
            name: name.to_string(),
            args,
            fill,
            headers,
        })
    }
}

fn required(schema: &Value) -> Vec<String> {
    schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Walks `properties` chains for `x-mcp-header` annotations.
fn collect_headers(
    schema: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<(HeaderName, Vec<String>)>,
) -> Result<(), String> {
    let Some(props) = schema["properties"].as_object() else {
        return Ok(());
    };
    for (key, prop) in props {
        path.push(key.clone());
        if let Some(h) = prop.get("x-mcp-header") {
            let name = h
                .as_str()
                .filter(|s| !s.is_empty())
                .and_then(|s| HeaderName::from_bytes(format!("mcp-param-{s}").as_bytes()).ok())
                .ok_or_else(|| format!("invalid x-mcp-header {h}"))?;
            out.push((name, path.clone()));
        }
        collect_headers(prop, path, out)?;
        path.pop();
    }
    Ok(())
}

/// The parts of a `tools/call` result the check reads.
#[derive(Deserialize)]
struct ToolResult<'a> {
    #[serde(borrow, default)]
    content: Vec<Part<'a>>,
    #[serde(default, rename = "isError")]
    is_error: bool,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

/// Checks a tool result: not an error, and an echo carries its text back.
pub fn check_result(result: &RawValue, expect: Option<&str>) -> Result<(), Failure> {
    let r: ToolResult = serde_json::from_str(result.get())
        .map_err(|_| Failure::Invalid("not a tool result".into()))?;
    let mut texts = r.content.iter().filter_map(|p| p.text.as_deref());
    if r.is_error {
        let mut t = texts.collect::<Vec<_>>().join("\n");
        t.truncate(200);
        return Err(Failure::Tool(t));
    }
    match expect {
        Some(want) if !texts.any(|t| t.contains(want)) => Err(Failure::WrongAnswer(format!(
            "expected {want:?} in the answer"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echo_is_preferred_and_its_required_text_filled() {
        let listed = vec![
            json!({"name": "add", "inputSchema": {"type": "object"}}),
            json!({"name": "echo", "inputSchema": {"type": "object",
                "properties": {"message": {"type": "string", "x-mcp-header": "Msg"}},
                "required": ["message"]}}),
        ];
        let mix = ToolMix::choose(&[], &[], &listed).unwrap();
        let call = mix.call(0, "lt-1-1");
        assert_eq!(call.tool.name, "echo");
        assert_eq!(call.args, json!({"message": "lt-1-1"}));
        assert_eq!(call.expect.as_deref(), Some("lt-1-1"));
        assert_eq!(call.headers[0].0.as_str(), "mcp-param-msg");
        let raw = |v: Value| RawValue::from_string(v.to_string()).unwrap();
        let echoed = raw(json!({"content": [{"type": "text", "text": "Echo: lt-1-1"}]}));
        assert!(check_result(&echoed, call.expect.as_deref()).is_ok());
        let empty = raw(json!({"content": []}));
        assert!(matches!(
            check_result(&empty, call.expect.as_deref()),
            Err(Failure::WrongAnswer(_))
        ));
        let failed = raw(json!({"content": [{"type": "text", "text": "boom"}], "isError": true}));
        assert!(matches!(check_result(&failed, None), Err(Failure::Tool(t)) if t == "boom"));
    }

    #[test]
    fn named_tools_take_their_args_in_turn() {
        let mix = ToolMix::choose(&["a".into(), "b".into()], &[r#"{"x": 1}"#.into()], &[]).unwrap();
        assert_eq!(mix.call(0, "t").args, json!({"x": 1}));
        assert_eq!(mix.call(1, "t").tool.name, "b");
        assert!(ToolMix::choose(&["a".into()], &["[1]".into()], &[]).is_err());
        assert!(ToolMix::choose(&[], &[], &[]).is_err());
    }
}
