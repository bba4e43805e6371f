//! Which AI client is on the other end, detected from `clientInfo.name`.

/// Known clients, matched case-insensitively on a fragment of their
/// `clientInfo.name`. Order matters: more specific names first.
const KNOWN_CLIENTS: &[(&str, &str)] = &[
    ("claude-code", "Claude Code"),
    ("claude code", "Claude Code"),
    ("cursor", "Cursor"),
    ("windsurf", "Windsurf"),
    ("cline", "Cline"),
    ("kiro", "Kiro"),
    ("augment", "Augment"),
    ("gemini", "Gemini"),
];

/// The client type recorded for a session: a known product name, else the
/// raw `clientInfo.name`, else `unknown`.
pub fn detect_client_type(client_name: Option<&str>) -> String {
    let Some(name) = client_name.map(str::trim).filter(|n| !n.is_empty()) else {
        return "unknown".to_string();
    };
    let lower = name.to_ascii_lowercase();
    KNOWN_CLIENTS
        .iter()
        .find(|(fragment, _)| lower.contains(fragment))
        .map(|(_, product)| (*product).to_string())
        .unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::detect_client_type;

    #[test]
    fn detects_known_clients_and_keeps_others() {
        assert_eq!(detect_client_type(Some("claude-code")), "Claude Code");
        assert_eq!(detect_client_type(Some("Cursor-VSCode")), "Cursor");
        assert_eq!(detect_client_type(Some("windsurf-client")), "Windsurf");
        assert_eq!(detect_client_type(Some("Cline")), "Cline");
        assert_eq!(detect_client_type(Some("Kiro CLI")), "Kiro");
        assert_eq!(detect_client_type(Some("augment-vscode")), "Augment");
        assert_eq!(detect_client_type(Some("gemini-cli-mcp-client")), "Gemini");
        assert_eq!(detect_client_type(Some("my-tool")), "my-tool");
        assert_eq!(detect_client_type(Some("  ")), "unknown");
        assert_eq!(detect_client_type(None), "unknown");
    }
}
