//! The agent management API of seed 001: every endpoint, its error codes, the draft / publish /
//! archive / rollback life cycle, prompt render / validate / enhance (against a local mock of an
//! OpenAI-compatible chat API), and an agent call whose transcript carries the agent's outcomes.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::Filter;

use crate::support::*;

async fn send(server: &TestServer, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    server.send(method, path, token, body).await
}

/// Seed 001's create-agent example.
fn seed_agent(name: &str) -> Value {
    json!({
        "agent_in": {
            "agent_name": name,
            "agent_description": "Handles outbound calls for product demos",
            "team": [],
            "agent_type": "OUTBOUND",
            "is_auto": true
        },
        "agent_config": {
            "system_prompt": "You are a helpful sales voice agent for {{company}}.",
            "starting_instructions": "Greet {{customer_name}} and ask qualifying questions.",
            "agent_type": "generic_alpha",
            "guardrail_ids": ["personality_v1", "environment_v1"],
            "metadata_schema": [
                {"name": "customer_name", "type": "string", "required": true, "description": "Customer name", "default": null, "enum_values": null},
                {"name": "company", "type": "string", "required": false, "default": "Dialplane", "enum_values": null},
                {"name": "plan", "type": "enum", "required": false, "enum_values": ["basic", "pro"]}
            ],
            "examples": [],
            "guidelines": ["Be concise"],
            "llm_config": {"provider": "groq", "model": "openai/gpt-oss-120b", "temperature": 0, "max_tokens": 0, "context_turns": 0},
            "notes": "Initial production config",
            "tts_config": {"voice_id": "Indus-hi-maya"},
            "stt_config": {"provider": "deepgram", "language": "hi"},
            "vad_config": {"min_silence_duration": 0.3, "min_speech_duration": 0.4, "activation_threshold": 0.45}
        },
        "call_outcome": {
            "outcome_name": "lead_status",
            "outcome_description": "Lead qualification result",
            "outcome_type": "FIXED",
            "outcome_enum": ["qualified", "not_qualified", "follow_up"],
            "is_visible": true
        },
        "call_infield": {"field_name": "customer_budget", "field_type": "NUMBER", "field_enum": null, "is_visible": true}
    })
}

async fn other_user(server: &TestServer) -> String {
    let hash = dialplane::auth::hash_password("other password").unwrap();
    dialplane::store::users::create(&server.db, "other@example.com", &hash, "member").await.unwrap();
    server.login("other@example.com", "other password").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_created_read_updated_and_deleted_by_their_owner_only() {
    let server = TestServer::start().await;
    let token = server.token().await;

    let (status, agent) =
        send(&server, "POST", "/api/agents/create", Some(&token), Some(seed_agent("Outbound Sales Agent"))).await;
    assert_eq!(status, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap().to_string();
    assert!(agent_id.starts_with("AGT_") && agent_id.len() == 12, "{agent_id}");
    assert!(agent.get("status_code").is_none(), "a raw model, not the envelope");
    for key in [
        "id",
        "agent_name",
        "agent_description",
        "user_id",
        "organization_id",
        "team",
        "is_active",
        "agent_type",
        "whatsapp_enabled",
        "is_auto",
        "team_size",
        "created_at",
        "updated_at",
        "agent_cost",
    ] {
        assert!(agent.get(key).is_some(), "{key} missing: {agent}");
    }
    assert_eq!((agent["agent_type"].as_str(), agent["team_size"].as_u64()), (Some("OUTBOUND"), Some(0)));

    let (status, duplicate) =
        send(&server, "POST", "/api/agents/create", Some(&token), Some(seed_agent("Outbound Sales Agent"))).await;
    assert_eq!(status, 400, "duplicate names: {duplicate}");
    let (status, invalid) = send(
        &server,
        "POST",
        "/api/agents/create",
        Some(&token),
        Some(json!({"agent_in": {"agent_name": ""}, "agent_config": {"vad_config": {"activation_threshold": 3}, "metadata_schema": [{"name": "1x"}]}, "call_outcome": {"outcome_name": "x", "outcome_type": "FIXED", "is_visible": true}})),
    )
    .await;
    assert_eq!(status, 422, "{invalid}");
    let locs: Vec<String> = invalid["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect::<Vec<_>>().join("."))
        .collect();
    for expected in [
        "body.agent_in.agent_name",
        "body.agent_config.vad_config",
        "body.agent_config.metadata_schema",
        "body.call_outcome.outcome_description",
        "body.call_outcome.outcome_enum",
    ] {
        assert!(locs.iter().any(|l| l == expected), "{expected} not in {locs:?}");
    }
    assert_eq!(send(&server, "POST", "/api/agents/create", None, Some(seed_agent("x"))).await.0, 401);

    let (status, got) = send(&server, "GET", &format!("/api/agents/{agent_id}"), Some(&token), None).await;
    assert_eq!((status, got["agent_name"].as_str()), (200, Some("Outbound Sales Agent")));
    let (status, patched) = send(
        &server,
        "PATCH",
        &format!("/api/agents/{agent_id}"),
        Some(&token),
        Some(json!({"agent_description": "Demos", "agent_type": "INBOUND"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["agent_description"].as_str(), patched["agent_type"].as_str()),
        (Some("Demos"), Some("INBOUND"))
    );
    assert_eq!(patched["agent_name"], "Outbound Sales Agent", "fields left out keep their values");
    let (status, _) = send(
        &server,
        "PATCH",
        &format!("/api/agents/{agent_id}"),
        Some(&token),
        Some(json!({"agent_type": "SIDEWAYS"})),
    )
    .await;
    assert_eq!(status, 422);

    let other = other_user(&server).await;
    for (method, body) in [("GET", None), ("PATCH", Some(json!({"agent_name": "mine"}))), ("DELETE", None)] {
        let (status, error) = send(&server, method, &format!("/api/agents/{agent_id}"), Some(&other), body).await;
        assert_eq!(status, 403, "{method}: {error}");
    }
    assert_eq!(
        send(&server, "GET", &format!("/api/agents/{agent_id}/configs/current"), Some(&other), None).await.0,
        403
    );
    assert_eq!(send(&server, "GET", "/api/agents/AGT_NOTFOUND", Some(&token), None).await.0, 404);

    // The legacy listing by API key, in the envelope.
    let (status, error) = send(&server, "POST", "/api/agents", None, Some(json!({}))).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(send(&server, "POST", "/api/agents", None, Some(json!({"api_key": "dpk_wrong"}))).await.0, 400);
    let (_, issued) = send(&server, "POST", "/api/developer/api-key", Some(&token), None).await;
    let key = issued["data"]["api_key"].as_str().unwrap();
    let (status, listed) = send(&server, "POST", "/api/agents", None, Some(json!({"api_key": key}))).await;
    assert_eq!(status, 200);
    assert_eq!(listed["message"], "Agents fetched");
    assert_eq!(listed["data"]["agents"][0]["agent_id"], agent_id.as_str());

    let (status, deleted) = send(&server, "DELETE", &format!("/api/agents/{agent_id}"), Some(&token), None).await;
    assert_eq!((status, deleted), (200, json!({"message": "Agent deleted successfully"})));
    assert_eq!(send(&server, "GET", &format!("/api/agents/{agent_id}"), Some(&token), None).await.0, 404);
    assert_eq!(send(&server, "GET", &format!("/api/agents/{agent_id}/configs/1"), Some(&token), None).await.0, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_versions_go_from_draft_to_published_to_archived_and_back() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let (_, agent) = send(&server, "POST", "/api/agents/create", Some(&token), Some(seed_agent("Versions"))).await;
    let base = format!("/api/agents/{}", agent["agent_id"].as_str().unwrap());

    let (status, v1) = send(&server, "GET", &format!("{base}/configs/current"), Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (v1["version"].as_i64(), v1["status"].as_str(), v1["is_current"].as_bool()),
        (Some(1), Some("published"), Some(true))
    );
    assert_eq!(v1["call_outcomes"][0]["outcome_name"], "lead_status");
    assert_eq!(v1["call_infields"][0]["field_name"], "customer_budget");
    assert!(v1["_id"].is_string() && v1["created_by"].is_string());

    // A draft, edited, then published: v1 is archived, its outcomes carried into v2.
    let (status, v2) =
        send(&server, "POST", &format!("{base}/configs"), Some(&token), Some(json!({"system_prompt": "Version two."})))
            .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(
        (v2["version"].as_i64(), v2["status"].as_str(), v2["is_current"].as_bool()),
        (Some(2), Some("draft"), Some(false))
    );
    let (status, edited) =
        send(&server, "PATCH", &format!("{base}/configs/2"), Some(&token), Some(json!({"notes": "edited"}))).await;
    assert_eq!(
        (status, edited["notes"].as_str(), edited["system_prompt"].as_str()),
        (200, Some("edited"), Some("Version two."))
    );
    let (status, error) =
        send(&server, "PATCH", &format!("{base}/configs/1"), Some(&token), Some(json!({"notes": "no"}))).await;
    assert_eq!(status, 400, "published versions are not edited: {error}");
    assert_eq!(send(&server, "DELETE", &format!("{base}/configs/1"), Some(&token), None).await.0, 400);
    assert_eq!(
        send(&server, "POST", &format!("{base}/configs/1/rollback"), Some(&token), None).await.1["version"],
        1,
        "rolling back to the current one is a no-op"
    );
    let (status, published) = send(&server, "POST", &format!("{base}/configs/2/publish"), Some(&token), None).await;
    assert_eq!(status, 200, "{published}");
    assert_eq!((published["status"].as_str(), published["is_current"].as_bool()), (Some("published"), Some(true)));
    assert_eq!(published["call_outcomes"][0]["outcome_name"], "lead_status", "outcomes carried over");
    let (_, v1) = send(&server, "GET", &format!("{base}/configs/1"), Some(&token), None).await;
    assert_eq!((v1["status"].as_str(), v1["is_current"].as_bool()), (Some("archived"), Some(false)));

    // A version published at once, then a rollback to v2.
    let (_, v3) = send(
        &server,
        "POST",
        &format!("{base}/configs?publish=true"),
        Some(&token),
        Some(json!({"system_prompt": "Three."})),
    )
    .await;
    assert_eq!((v3["version"].as_i64(), v3["status"].as_str()), (Some(3), Some("published")));
    let (_, draft) = send(&server, "POST", &format!("{base}/configs"), Some(&token), Some(json!({}))).await;
    assert_eq!(draft["version"], 4);
    assert_eq!(
        send(&server, "POST", &format!("{base}/configs/4/rollback"), Some(&token), None).await.0,
        400,
        "a draft was never published"
    );
    let (status, back) = send(&server, "POST", &format!("{base}/configs/2/rollback"), Some(&token), None).await;
    assert_eq!((status, back["version"].as_i64(), back["is_current"].as_bool()), (200, Some(2), Some(true)));
    assert_eq!(
        send(&server, "GET", &format!("{base}/configs/current"), Some(&token), None).await.1["system_prompt"],
        "Version two."
    );
    assert_eq!(
        send(&server, "POST", &format!("{base}/configs/3/publish"), Some(&token), None).await.0,
        400,
        "an archived version is restored by rollback"
    );

    let (_, all) = send(&server, "GET", &format!("{base}/configs"), Some(&token), None).await;
    let versions: Vec<(i64, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["version"].as_i64().unwrap(), c["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        versions,
        [(4, "draft".into()), (3, "archived".into()), (2, "published".into()), (1, "archived".into())]
    );
    let (_, archived) =
        send(&server, "GET", &format!("{base}/configs?status_filter=archived&skip=1&limit=1"), Some(&token), None)
            .await;
    assert_eq!(archived.as_array().unwrap().iter().map(|c| c["version"].as_i64().unwrap()).collect::<Vec<_>>(), [1]);
    assert_eq!(send(&server, "GET", &format!("{base}/configs?status_filter=old"), Some(&token), None).await.0, 422);
    assert_eq!(send(&server, "GET", &format!("{base}/configs/99"), Some(&token), None).await.0, 404);
    assert_eq!(send(&server, "GET", &format!("{base}/configs/two"), Some(&token), None).await.0, 422);
    let (status, _) = send(&server, "DELETE", &format!("{base}/configs/4"), Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(send(&server, "GET", &format!("{base}/configs/4"), Some(&token), None).await.0, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_infields_and_service_configs_are_managed_on_the_current_config() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let (_, agent) = send(&server, "POST", "/api/agents/create", Some(&token), Some(seed_agent("Fields"))).await;
    let base = format!("/api/agents/{}", agent["agent_id"].as_str().unwrap());

    let outcome = json!({"outcome_name": "callback_date", "outcome_description": "When to call back", "outcome_type": "DATE", "is_visible": true});
    let (status, created) =
        send(&server, "POST", &format!("{base}/call_outcomes"), Some(&token), Some(outcome.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["status_code"].as_u64(), created["data"]["outcome_name"].as_str()),
        (Some(201), Some("callback_date"))
    );
    assert_eq!(
        send(&server, "POST", &format!("{base}/call_outcomes"), Some(&token), Some(outcome)).await.0,
        400,
        "unique names"
    );
    let (status, _) = send(
        &server,
        "POST",
        &format!("{base}/call_outcomes"),
        Some(&token),
        Some(json!({"outcome_name": "x", "outcome_description": "", "outcome_type": "COLOUR", "is_visible": true})),
    )
    .await;
    assert_eq!(status, 422);
    let (_, list) = send(&server, "GET", &format!("{base}/call_outcomes"), Some(&token), None).await;
    let names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|o| o["outcome_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lead_status", "callback_date"]);
    let (status, updated) = send(
        &server,
        "PUT",
        &format!("{base}/call_outcomes/callback_date"),
        Some(&token),
        Some(json!({"is_visible": false})),
    )
    .await;
    assert_eq!(
        (status, updated["data"]["is_visible"].as_bool(), updated["data"]["outcome_type"].as_str()),
        (200, Some(false), Some("DATE"))
    );
    let (status, _) = send(
        &server,
        "PUT",
        &format!("{base}/call_outcomes/lead_status"),
        Some(&token),
        Some(json!({"outcome_enum": []})),
    )
    .await;
    assert_eq!(status, 422, "FIXED needs choices");
    assert_eq!(send(&server, "PUT", &format!("{base}/call_outcomes/nope"), Some(&token), Some(json!({}))).await.0, 404);
    assert_eq!(
        send(&server, "DELETE", &format!("{base}/call_outcomes/callback_date"), Some(&token), None).await.0,
        200
    );
    assert_eq!(
        send(&server, "DELETE", &format!("{base}/call_outcomes/callback_date"), Some(&token), None).await.0,
        404
    );

    let (status, field) = send(
        &server,
        "POST",
        &format!("{base}/call_infields"),
        Some(&token),
        Some(json!({"field_name": "city", "field_type": "TEXT", "is_visible": true})),
    )
    .await;
    assert_eq!((status, field["data"]["field_enum"].clone()), (201, Value::Null));
    let (_, fields) = send(&server, "GET", &format!("{base}/call_infields"), Some(&token), None).await;
    assert_eq!(fields["data"].as_array().unwrap().len(), 2);
    let (status, _) = send(
        &server,
        "PATCH",
        &format!("{base}/call_infields/city"),
        Some(&token),
        Some(json!({"field_type": "FIXED", "field_enum": ["Mumbai", "Pune"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(send(&server, "DELETE", &format!("{base}/call_infields/city"), Some(&token), None).await.0, 200);

    let (status, config) = send(
        &server,
        "PUT",
        &format!("{base}/config/tts_config"),
        Some(&token),
        Some(json!({"voice_id": "Indus-en-arjun", "speed": 1.2})),
    )
    .await;
    assert_eq!((status, config["tts_config"]["voice_id"].as_str()), (200, Some("Indus-en-arjun")));
    for (service, bad, field) in [
        (
            "vad_config",
            json!({"min_silence_duration": 0.3, "min_speech_duration": 0.4, "activation_threshold": 1.5}),
            "activation_threshold",
        ),
        ("stt_config", json!({"provider": "deepgram"}), "language"),
        ("llm_config", json!({"provider": "groq", "model": "m", "max_tokens": -1}), "max_tokens"),
        ("tts_config", json!({"speed": 1}), "voice_id"),
    ] {
        let (status, error) = send(&server, "PUT", &format!("{base}/config/{service}"), Some(&token), Some(bad)).await;
        assert_eq!(status, 400, "{service}: {error}");
        assert!(error["detail"].as_str().unwrap().contains(field), "{service}: {error}");
    }
    assert_eq!(send(&server, "PUT", &format!("{base}/config/db_config"), Some(&token), Some(json!({}))).await.0, 400);
    let (_, current) = send(&server, "GET", &format!("{base}/configs/current"), Some(&token), None).await;
    assert_eq!(current["tts_config"]["voice_id"], "Indus-en-arjun");
    assert_eq!(current["stt_config"]["language"], "hi", "the other sections are untouched");
    server.stop().await;
}

/// Requests the mock LLM got: the `Authorization` header and the JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A local OpenAI-compatible chat completions API: answers with the JSON content given, and keeps
/// the requests it got.
async fn mock_llm(content: Value) -> (String, Seen, oneshot::Sender<()>) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let route = warp::path!("v1" / "chat" / "completions")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::json())
        .map(move |auth: Option<String>, body: Value| {
            s.lock().unwrap().push((auth, body));
            warp::reply::json(&json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string(), "refusal": null}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            }))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(route)
            .incoming(listener)
            .graceful(async move {
                let _ = stopped.await;
            })
            .run(),
    );
    (url, seen, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_are_rendered_validated_and_enhanced() {
    let content = json!({"enhanced_system_prompt": "You are Dialplane's sales agent for {{company}}.", "enhanced_starting_instructions": "Hello {{customer_name}}!", "suggestions": ["Add examples."]});
    let (llm_url, seen, _stop) = mock_llm(content).await;
    let server = TestServer::start_with(ServerOptions {
        extra: vec![
            ("DIALPLANE_LLM_BASE_URL", llm_url),
            ("DIALPLANE_LLM_MODEL", "gpt-4o-mini".into()),
            ("DIALPLANE_LLM_API_KEY", "sk-test-key".into()),
        ],
        ..Default::default()
    })
    .await;
    let token = server.token().await;
    let (_, agent) = send(&server, "POST", "/api/agents/create", Some(&token), Some(seed_agent("Prompts"))).await;
    let base = format!("/api/agents/{}", agent["agent_id"].as_str().unwrap());

    let (status, rendered) = send(
        &server,
        "POST",
        &format!("{base}/configs/render"),
        Some(&token),
        Some(json!({"customer_name": "Rahul", "city": "Mumbai"})),
    )
    .await;
    assert_eq!(status, 200, "{rendered}");
    assert_eq!(
        rendered["rendered_system_prompt"], "You are a helpful sales voice agent for Dialplane.",
        "the default fills company"
    );
    assert_eq!(rendered["rendered_starting_instructions"], "Greet Rahul and ask qualifying questions.");
    assert_eq!(rendered["errors"], json!([]));
    let (_, missing) =
        send(&server, "POST", &format!("{base}/configs/render?version=1"), Some(&token), Some(json!({}))).await;
    assert_eq!(missing["rendered_starting_instructions"], "Greet {{customer_name}} and ask qualifying questions.");
    assert_eq!(missing["errors"][0]["field"], "customer_name");

    let (_, valid) = send(
        &server,
        "POST",
        &format!("{base}/configs/validate"),
        Some(&token),
        Some(json!({"customer_name": "Rahul", "plan": "pro"})),
    )
    .await;
    assert_eq!(valid, json!({"valid": true, "errors": []}));
    let (_, invalid) = send(
        &server,
        "POST",
        &format!("{base}/configs/validate"),
        Some(&token),
        Some(json!({"customer_name": 7, "plan": "gold"})),
    )
    .await;
    assert_eq!(invalid["valid"], false);
    let fields: Vec<&str> =
        invalid["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["customer_name", "plan"]);

    let (status, enhanced) = send(
        &server,
        "POST",
        &format!("{base}/configs/enhance"),
        Some(&token),
        Some(json!({"system_prompt": "sales agent", "starting_instructions": "say hi"})),
    )
    .await;
    assert_eq!(status, 200, "{enhanced}");
    assert_eq!(enhanced["source"], "llm");
    assert_eq!(enhanced["enhanced_starting_instructions"], "Hello {{customer_name}}!");
    assert_eq!(enhanced["suggestions"], json!(["Add examples."]));
    let (auth, request) = seen.lock().unwrap()[0].clone();
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(request["model"], "gpt-4o-mini");
    assert_eq!(request["response_format"]["type"], "json_schema");
    assert!(request["messages"][1]["content"].as_str().unwrap().contains("sales agent"));
    server.stop().await;

    // Without an LLM: the deterministic local enhancement.
    let server = TestServer::start().await;
    let token = server.token().await;
    let (_, agent) = send(&server, "POST", "/api/agents/create", Some(&token), Some(seed_agent("Local"))).await;
    let path = format!("/api/agents/{}/configs/enhance", agent["agent_id"].as_str().unwrap());
    let body = json!({"system_prompt": "  you are a sales agent  ", "starting_instructions": "say hi", "guidelines": ["Be concise"]});
    let (status, first) = send(&server, "POST", &path, Some(&token), Some(body.clone())).await;
    assert_eq!((status, first["source"].as_str()), (200, Some("local")));
    assert!(first["enhanced_system_prompt"].as_str().unwrap().starts_with("You are a sales agent."), "{first}");
    assert!(first["enhanced_system_prompt"].as_str().unwrap().contains("- Be concise."));
    let (_, second) = send(&server, "POST", &path, Some(&token), Some(body)).await;
    assert_eq!(first, second, "deterministic");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_call_carries_the_rendered_config_and_its_transcript_the_agents_outcomes() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let mut definition = seed_agent("Caller");
    definition["call_outcome"] = json!({"outcome_name": "interested", "outcome_description": "Wants the plan", "outcome_type": "BOOLEAN", "is_visible": true});
    let (_, agent) = send(&server, "POST", "/api/agents/create", Some(&token), Some(definition)).await;
    let agent_id = agent["agent_id"].as_str().unwrap().to_string();
    let base = format!("/api/agents/{agent_id}");
    for outcome in [
        json!({"outcome_name": "lead_status", "outcome_description": "Lead", "outcome_type": "FIXED", "outcome_enum": ["qualified", "not_qualified"], "is_visible": true}),
        json!({"outcome_name": "budget", "outcome_description": "Budget", "outcome_type": "NUMBER", "is_visible": true}),
        json!({"outcome_name": "internal_note", "outcome_description": "Hidden", "outcome_type": "TEXT", "is_visible": false}),
    ] {
        assert_eq!(send(&server, "POST", &format!("{base}/call_outcomes"), Some(&token), Some(outcome)).await.0, 201);
    }

    let call_id = server
        .click2call(&token, json!({"customer_number": "919999999999", "agent_number": agent_id, "transcript": true, "agent_config": {"metadata": {"customer_name": "Rahul"}}}))
        .await;
    let stored = dialplane::store::calls::find(&server.db, &call_id).await.unwrap().unwrap();
    let config: Value = serde_json::from_str(&stored.agent_config).unwrap();
    assert_eq!(config["starting_instructions"], "Greet Rahul and ask qualifying questions.");
    assert_eq!(config["config_version"], 1);
    server.wait_until_settled(&token, &call_id).await;
    let (status, transcript) = server.get_json(&format!("/api/calls/{call_id}/transcript"), Some(&token)).await;
    assert_eq!(status, 200, "{transcript}");
    let outcomes = &transcript["data"]["transcript"]["call_outcomes"];
    assert!(outcomes["interested"].is_boolean(), "{outcomes}");
    assert!(["qualified", "not_qualified"].contains(&outcomes["lead_status"].as_str().unwrap()), "{outcomes}");
    assert!(outcomes["budget"].is_number(), "{outcomes}");
    assert!(outcomes.get("internal_note").is_none(), "only visible outcomes: {outcomes}");

    // Unknown and foreign agents are refused before anything is stored.
    let (status, _) = server
        .post_json(
            "/api/calls/click2call",
            Some(&token),
            &json!({"customer_number": "919999999999", "agent_number": "AGT_NOTFOUND"}),
        )
        .await;
    assert_eq!(status, 404);
    let other = other_user(&server).await;
    let (status, _) = server
        .post_json(
            "/api/calls/click2call",
            Some(&other),
            &json!({"customer_number": "919999999999", "agent_number": agent_id}),
        )
        .await;
    assert_eq!(status, 403);
    server.stop().await;
}
