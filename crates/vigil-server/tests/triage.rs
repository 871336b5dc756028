//! Triage over REST: the agent on a line, an event and an incident; reports as JSON and
//! Markdown; the asset inventory the agent consults; bad input and roles.

mod common;

use axum::http::StatusCode;
use common::{error_code, harness};
use serde_json::json;

const LINE: &str = "2023/10/9 11:23 172.24.158.39:45676 180.215.5.133:2599 emp3r0r木马攻击 \
                    https中疑似存在emp3r0r恶意流量";

fn body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn a_line_is_triaged_saved_and_readable() {
    let h = harness().await;
    // The asset the playbook looks up first.
    let r = h
        .call(
            "PUT",
            "/api/v1/assets/ws-017",
            Some(&h.admin),
            body(
                json!({"ip": "172.24.158.39", "host": "ws-017", "owner": "finance",
                        "criticality": "high", "tags": ["workstation"]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = h
        .call(
            "POST",
            "/api/v1/triage",
            Some(&h.viewer),
            body(json!({"line": LINE})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["category"], "trojan_c2");
    assert_eq!(r.body["verdict"], "suspicious");
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = std::path::PathBuf::from(r.body["report_path"].as_str().unwrap());
    assert!(path.exists(), "{}", path.display());
    let asset_call = &r.body["report"]["tool_calls"][0];
    assert_eq!(asset_call["tool"], "asset_lookup");
    assert!(
        asset_call["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("high criticality")
    );

    let list = h
        .call(
            "GET",
            "/api/v1/reports?verdict=suspicious",
            Some(&h.viewer),
            vec![],
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["reports"][0]["id"], id.as_str());
    let md = h
        .call(
            "GET",
            &format!("/api/v1/reports/{id}?format=markdown"),
            Some(&h.viewer),
            vec![],
        )
        .await;
    assert_eq!(md.status, StatusCode::OK);
    assert!(
        md.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert_eq!(md.headers["x-content-type-options"], "nosniff");
    assert_eq!(md.text, std::fs::read_to_string(&path).unwrap());
    let js = h
        .call(
            "GET",
            &format!("/api/v1/reports/{id}"),
            Some(&h.viewer),
            vec![],
        )
        .await;
    assert_eq!(js.body["report"]["verdict"], "suspicious");
    let missing = h
        .call("GET", "/api/v1/reports/nope", Some(&h.viewer), vec![])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let kb = h
        .call(
            "GET",
            "/api/v1/kb/search?q=Behinder%20webshell",
            Some(&h.viewer),
            vec![],
        )
        .await;
    assert_eq!(kb.status, StatusCode::OK);
    assert!(
        kb.body["hits"][0]["source"]
            .as_str()
            .unwrap()
            .contains("webshell"),
        "{}",
        kb.text
    );
}

#[tokio::test]
async fn events_and_incidents_are_triaged_too() {
    let h = harness().await;
    let r = h
        .call(
            "POST",
            "/api/v1/triage",
            Some(&h.admin),
            body(
                json!({"event": {"rule": {"name": "SSH brute force"}, "message":
                "500 failed password attempts for root from 203.0.113.9 in 2 minutes",
                "source": {"ip": "203.0.113.9"}, "destination": {"ip": "10.0.0.5", "port": 22},
                "host": {"name": "bastion"}}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["category"], "brute_force");
    let r = h
        .call(
            "POST",
            "/api/v1/triage",
            Some(&h.viewer),
            body(json!({"incident_id": "no-such"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let h = harness().await;
    for (payload, code, needle) in [
        (
            json!({"line": "hello"}),
            "invalid_field",
            "TIME SRC_IP:PORT",
        ),
        (
            json!({"line": "2023/10/9 11:23 1.2.3.4:5"}),
            "invalid_field",
            "DST_IP:PORT is missing",
        ),
        (json!({"event": [1, 2]}), "invalid_field", "JSON object"),
        (
            json!({"line": LINE, "incident_id": "x"}),
            "bad_request",
            "exactly one",
        ),
        (json!({}), "bad_request", "exactly one"),
        (json!({"lines": LINE}), "invalid_json", "unknown field"),
    ] {
        let r = h
            .call(
                "POST",
                "/api/v1/triage",
                Some(&h.viewer),
                body(payload.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{payload}: {}", r.text);
        assert_eq!(error_code(&r), code, "{payload}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{}",
            r.text
        );
    }
    let r = h
        .call(
            "POST",
            "/api/v1/triage",
            Some(&h.viewer),
            b"not json".to_vec(),
        )
        .await;
    assert_eq!(error_code(&r), "invalid_json");
    let big = body(json!({"line": "x".repeat(300 * 1024)}));
    let r = h.call("POST", "/api/v1/triage", Some(&h.viewer), big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = h
        .call(
            "GET",
            "/api/v1/reports?verdict=maybe",
            Some(&h.viewer),
            vec![],
        )
        .await;
    assert_eq!(error_code(&r), "invalid_field");
    let r = h
        .call(
            "GET",
            "/api/v1/reports/x?format=pdf",
            Some(&h.viewer),
            vec![],
        )
        .await;
    assert_eq!(error_code(&r), "invalid_field");
}

#[tokio::test]
async fn roles_and_asset_validation() {
    let h = harness().await;
    let line = body(json!({"line": LINE}));
    assert_eq!(
        h.call("POST", "/api/v1/triage", None, line.clone())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Issue 22: triage reads stored events through its tools, so agents may not run it.
    assert_eq!(
        h.call("POST", "/api/v1/triage", Some(&h.agent), line)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call("GET", "/api/v1/reports", None, vec![]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let asset = body(json!({"ip": "10.0.0.10", "criticality": "critical"}));
    assert_eq!(
        h.call(
            "PUT",
            "/api/v1/assets/dc-01",
            Some(&h.viewer),
            asset.clone()
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call("PUT", "/api/v1/assets/dc-01", Some(&h.agent), asset.clone())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = h
        .call("PUT", "/api/v1/assets/dc-01", Some(&h.admin), asset)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (id, payload, field) in [
        ("dc-01", json!({"criticality": "extreme"}), "criticality"),
        ("dc-01", json!({"ip": "10.0.0.999"}), "ip"),
        ("dc-01", json!({"id": "other"}), "id"),
        ("a%20b", json!({}), "id"),
        ("dc-01", json!({"tags": vec!["t"; 65]}), "tags"),
    ] {
        let r = h
            .call(
                "PUT",
                &format!("/api/v1/assets/{id}"),
                Some(&h.admin),
                body(payload.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{payload}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{}", r.text);
    }
    let r = h
        .call(
            "GET",
            "/api/v1/assets?ip=10.0.0.10",
            Some(&h.viewer),
            vec![],
        )
        .await;
    assert_eq!(r.body["assets"][0]["id"], "dc-01");
    assert_eq!(r.body["assets"][0]["criticality"], "critical");
    let r = h
        .call("DELETE", "/api/v1/assets/dc-01", Some(&h.admin), vec![])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .call("GET", "/api/v1/assets/dc-01", Some(&h.viewer), vec![])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn run_script_runs_the_users_scripts_on_the_event() {
    let h = harness().await;
    let source = r#"
fn analyze(event, config) {
    let name = event["rule.name"];
    if name == () || !name.contains("emp3r0r") { return (); }
    #{ score: 85, summary: "known implant family " + name, technique: "T1071" }
}
"#;
    let r = h
        .call(
            "POST",
            "/api/v1/scripts",
            Some(&h.admin),
            body(json!({"name": "implant_names", "source": source,
                        "categories": ["intrusion_detection"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut tools = vigil_triage::Toolbox::new(std::time::Duration::from_secs(5));
    tools.add(std::sync::Arc::new(vigil_server::triage::RunScript(
        h.state.scripts.clone(),
    )));
    let allowed = vec!["run_script".to_string()];
    let subject = vigil_triage::parse_line(LINE).unwrap();
    let out = tools
        .call("run_script", &json!({}), &allowed, &subject)
        .await
        .unwrap();
    assert_eq!(out.signal, vigil_triage::Signal::Malicious, "{out:?}");
    assert!(out.summary.contains("1 findings"), "{}", out.summary);
    assert!(
        out.data["findings"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("emp3r0r")
    );
    let out = tools
        .call(
            "run_script",
            &json!({"script": "absent"}),
            &allowed,
            &subject,
        )
        .await
        .unwrap();
    assert!(out.summary.contains("does not exist"), "{}", out.summary);
    let benign =
        vigil_triage::parse_line("2024-01-01 00:00:00 10.0.0.1:1 10.0.0.2:2 update ok").unwrap();
    let out = tools
        .call("run_script", &json!({}), &allowed, &benign)
        .await
        .unwrap();
    assert_eq!(out.signal, vigil_triage::Signal::None);
}
