//! Campaigns on the sandbox carrier: a 1,000-contact campaign with mixed outcomes completes with
//! statistics that match the database and the sandbox's own log, within its concurrency cap and its
//! retry policy; calls per second from the sandbox's accept times; calling windows in each
//! contact's timezone; a number put on do-not-call after it was queued; pause, resume and stop with
//! their events; a restart that resumes a running campaign; and the API's errors.

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use dialplane::store::entities::{call, campaign_contact, sandbox_call};

use crate::support::*;

async fn send(server: &TestServer, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    server.send(method, path, Some(token), body).await
}

/// Creates a campaign with `settings` and `phones` as inline contacts; returns its id.
async fn campaign_with(server: &TestServer, token: &str, settings: Value, contacts: Vec<Value>) -> String {
    let mut body = json!({ "name": "Test campaign", "agent_number": "918888888888", "caller_ids": ["+919484956750"] });
    for (k, v) in settings.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, created) = send(server, "POST", "/v1/campaigns", token, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    for chunk in contacts.chunks(5_000) {
        let (status, added) =
            send(server, "POST", &format!("/v1/campaigns/{id}/contacts"), token, Some(json!({ "contacts": chunk })))
                .await;
        assert_eq!(status, 200, "{added}");
        assert_eq!(added["rejected"], json!([]), "{added}");
    }
    id
}

/// Waits until the campaign reaches `state`, sampling its status; returns the most calls in flight seen.
async fn wait_for_state(server: &TestServer, token: &str, id: &str, state: &str, patience: Duration) -> u64 {
    let started = tokio::time::Instant::now();
    let mut most_in_flight = 0;
    loop {
        let (_, status) = send(server, "GET", &format!("/v1/campaigns/{id}/status"), token, None).await;
        most_in_flight = most_in_flight.max(status["in_flight"].as_u64().unwrap_or(0));
        if status["state"] == state {
            return most_in_flight;
        }
        assert!(started.elapsed() < patience, "campaign {id} did not reach {state}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn calls_of(server: &TestServer, campaign_id: &str) -> Vec<call::Model> {
    call::Entity::find().filter(call::Column::CampaignId.eq(campaign_id)).all(&server.db).await.unwrap()
}

/// The sandbox carrier's own log: when it accepted each call, by Dialplane call id.
async fn sandbox_log(server: &TestServer) -> HashMap<String, chrono::DateTime<chrono::Utc>> {
    sandbox_call::Entity::find()
        .all(&server.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.reference, r.placed_at))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_contact_campaign_completes_within_its_limits_and_its_stats_match() {
    let server = TestServer::start().await;
    let token = server.token().await;
    // Outcomes by the sandbox script of the last four digits: 0001 busy, 0002 no answer, else answered.
    let contacts: Vec<Value> = (0..1_000u32)
        .map(|n| {
            let tail = match n % 10 {
                0 => "0001".to_string(),
                1 => "0002".to_string(),
                _ => format!("{:04}", 1_000 + n),
            };
            json!({ "phone": format!("+9190{n:04}{tail}"), "timezone": "UTC" })
        })
        .collect();
    let settings = json!({
        "max_concurrent_calls": 40,
        "calls_per_second": 100,
        "calling_window": { "start": "00:00", "end": "23:59" },
        "retry_policy": { "max_attempts": 2, "delays": { "busy": 0, "no_answer": 1 } }
    });
    let id = campaign_with(&server, &token, settings, contacts).await;
    let (status, launched) = send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    assert_eq!((status, launched["state"].as_str()), (200, Some("running")));
    let most_in_flight = wait_for_state(&server, &token, &id, "completed", Duration::from_secs(240)).await;
    assert!(most_in_flight <= 40, "the concurrency cap held: {most_in_flight} in flight");
    assert!(most_in_flight > 1, "calls ran side by side");

    let calls = calls_of(&server, &id).await;
    let log = sandbox_log(&server).await;
    let mut per_number: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in &calls {
        per_number.entry(c.customer_number.as_str()).or_default().push(c.status.as_str());
        assert!(log.contains_key(&c.id), "every call reached the carrier once: {}", c.id);
    }
    assert_eq!(log.len(), calls.len(), "the sandbox saw exactly the campaign's calls");
    assert_eq!(per_number.len(), 1_000, "every contact was dialed");
    for (number, outcomes) in &per_number {
        let expected = if number.ends_with("0001") || number.ends_with("0002") { 2 } else { 1 };
        assert_eq!(outcomes.len(), expected, "{number}: {outcomes:?}");
    }
    assert_eq!(calls.len(), 1_200);

    let (_, stats) = send(&server, "GET", &format!("/v1/campaigns/{id}/stats"), &token, None).await;
    assert_eq!(stats["contacts_total"], 1_000);
    assert_eq!(stats["contacts"]["done"], 1_000, "{stats}");
    assert_eq!(stats["attempts"], 1_200);
    assert_eq!(stats["outcomes"], json!({ "completed": 800, "busy": 200, "no_answer": 200 }));
    assert_eq!(stats["answered"], 800);
    assert!((stats["answer_rate"].as_f64().unwrap() - 800.0 / 1_200.0).abs() < 1e-9);
    assert!(stats["average_duration_s"].as_f64().unwrap() > 0.0);
    let stored = campaign_contact::Entity::find()
        .filter(campaign_contact::Column::CampaignId.eq(id.as_str()))
        .all(&server.db)
        .await
        .unwrap();
    assert!(stored.iter().all(|c| c.attempts <= 2));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_per_second_hold_in_every_one_second_window_of_the_carriers_accepts() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let contacts: Vec<Value> =
        (0..24u32).map(|n| json!({ "phone": format!("+9191{n:04}{:04}", 1_000 + n), "timezone": "UTC" })).collect();
    let settings = json!({ "max_concurrent_calls": 100, "calls_per_second": 4, "calling_window": { "start": "00:00", "end": "23:59" } });
    let id = campaign_with(&server, &token, settings, contacts).await;
    send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    wait_for_state(&server, &token, &id, "completed", Duration::from_secs(60)).await;
    let mut accepted: Vec<_> = sandbox_log(&server).await.into_values().collect();
    accepted.sort();
    assert_eq!(accepted.len(), 24);
    for (i, at) in accepted.iter().enumerate() {
        let within = accepted[i..].iter().take_while(|t| **t < *at + chrono::Duration::seconds(1)).count();
        assert!(within <= 4, "{within} calls accepted within one second from {at}");
    }
    let span = *accepted.last().unwrap() - accepted[0];
    assert!(span >= chrono::Duration::seconds(4), "24 calls at 4/s take at least 5 one-second windows: {span}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_dialed_only_inside_their_own_calling_window_and_never_when_on_do_not_call() {
    let server = TestServer::start().await;
    let token = server.token().await;
    // A one-hour window around the current time in Kolkata: open there, closed in the other zones.
    let kolkata = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata);
    let start = (kolkata - chrono::Duration::minutes(30)).format("%H:%M").to_string();
    let end = (kolkata + chrono::Duration::minutes(30)).format("%H:%M").to_string();
    let zones = [
        ("Asia/Kolkata", "+919200001234"),
        ("Europe/London", "+447700900001"),
        ("America/New_York", "+12125550101"),
        ("Asia/Tokyo", "+819012345678"),
    ];
    let mut contacts: Vec<Value> = zones.iter().map(|(tz, phone)| json!({ "phone": phone, "timezone": tz })).collect();
    contacts.push(json!({ "phone": "+919200005678", "timezone": "Asia/Kolkata" }));
    let settings = json!({ "calling_window": { "start": start, "end": end }, "calls_per_second": 10 });
    let id = campaign_with(&server, &token, settings, contacts).await;
    // Put one queued number on do-not-call before the campaign runs.
    assert_eq!(send(&server, "POST", "/v1/dnc", &token, Some(json!({ "phone": "+919200005678" }))).await.0, 201);
    send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;

    let started = tokio::time::Instant::now();
    loop {
        let stored = campaign_contact::Entity::find()
            .filter(campaign_contact::Column::CampaignId.eq(id.as_str()))
            .all(&server.db)
            .await
            .unwrap();
        let state = |phone: &str| stored.iter().find(|c| c.phone == phone).unwrap().state.clone();
        if state("+919200001234") == "done" && state("+919200005678") == "dnc" {
            for (_, phone) in &zones[1..] {
                let contact = stored.iter().find(|c| c.phone == *phone).unwrap();
                assert_eq!(contact.state, "pending", "{phone} is outside its window");
                assert!(contact.next_attempt_at > chrono::Utc::now(), "{phone} is due when its window opens");
            }
            break;
        }
        assert!(started.elapsed() < PATIENCE, "{stored:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dialed: Vec<String> = calls_of(&server, &id).await.into_iter().map(|c| c.customer_number).collect();
    assert_eq!(dialed, ["919200001234"], "only the contact inside its window and not on do-not-call");
    let (_, status) = send(&server, "GET", &format!("/v1/campaigns/{id}/status"), &token, None).await;
    assert_eq!(status["state"], "running", "contacts remain for later windows");
    assert!(status["next_due_at"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stop_act_at_once_and_repeating_one_changes_nothing() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let receiver = WebhookReceiver::start().await;
    let (status, _) = send(
        &server,
        "POST",
        "/v1/webhooks",
        &token,
        Some(json!({ "url": receiver.url, "event_types": ["campaign.*"] })),
    )
    .await;
    assert_eq!(status, 201);
    let contacts: Vec<Value> =
        (0..40u32).map(|n| json!({ "phone": format!("+9193{n:04}{:04}", 1_000 + n), "timezone": "UTC" })).collect();
    let settings = json!({ "calls_per_second": 2, "calling_window": { "start": "00:00", "end": "23:59" } });
    let id = campaign_with(&server, &token, settings, contacts).await;

    send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    eventually("a first call", || async { !calls_of(&server, &id).await.is_empty() }).await;
    let (status, paused) = send(&server, "POST", &format!("/v1/campaigns/{id}/pause"), &token, None).await;
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")));
    let (status, again) = send(&server, "POST", &format!("/v1/campaigns/{id}/pause"), &token, None).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("paused")), "repeating is a no-op");
    let placed = calls_of(&server, &id).await.len();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(calls_of(&server, &id).await.len(), placed, "no admission while paused");
    assert_eq!(
        send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await.0,
        409,
        "a paused campaign is resumed, not launched"
    );

    send(&server, "POST", &format!("/v1/campaigns/{id}/resume"), &token, None).await;
    eventually("more calls after resuming", || async { calls_of(&server, &id).await.len() > placed }).await;
    let (status, stopped) = send(&server, "POST", &format!("/v1/campaigns/{id}/stop"), &token, None).await;
    assert_eq!((status, stopped["state"].as_str()), (200, Some("stopped")));
    assert_eq!(send(&server, "POST", &format!("/v1/campaigns/{id}/stop"), &token, None).await.0, 200);
    assert_eq!(send(&server, "POST", &format!("/v1/campaigns/{id}/resume"), &token, None).await.0, 409);
    let after_stop = calls_of(&server, &id).await.len();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(calls_of(&server, &id).await.len(), after_stop, "no call after stop");
    let (_, stats) = send(&server, "GET", &format!("/v1/campaigns/{id}/stats"), &token, None).await;
    let canceled = stats["contacts"]["canceled"].as_u64().unwrap_or(0);
    assert!(canceled > 0 && canceled as usize + after_stop == 40, "the rest were canceled: {stats}");

    let got = eventually_events(&receiver, 4).await;
    assert_eq!(got, ["campaign.launched", "campaign.paused", "campaign.resumed", "campaign.stopped"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.all().len(), 4, "repeated actions emitted nothing");
    server.stop().await;
}

async fn eventually_events(receiver: &WebhookReceiver, n: usize) -> Vec<String> {
    let started = tokio::time::Instant::now();
    loop {
        let all = receiver.all();
        // One subscription's messages arrive in the order they were recorded.
        if all.len() >= n {
            return all.iter().map(|d| d.body["type"].as_str().unwrap_or_default().to_string()).collect();
        }
        assert!(started.elapsed() < PATIENCE, "{} events", all.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_campaign_resumes_after_a_restart_without_dialing_anyone_twice() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(&dir).await;
    let options = || ServerOptions { database_url: Some(database_url.clone()), ..Default::default() };
    let server = TestServer::start_with(options()).await;
    let token = server.token().await;
    let contacts: Vec<Value> =
        (0..30u32).map(|n| json!({ "phone": format!("+9194{n:04}{:04}", 1_000 + n), "timezone": "UTC" })).collect();
    let settings = json!({ "calls_per_second": 10, "calling_window": { "start": "00:00", "end": "23:59" } });
    let id = campaign_with(&server, &token, settings, contacts).await;
    send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    eventually("some calls", || async { calls_of(&server, &id).await.len() >= 5 }).await;
    server.stop().await;

    let server = TestServer::start_with(options()).await;
    let token = server.token().await;
    wait_for_state(&server, &token, &id, "completed", Duration::from_secs(60)).await;
    let calls = calls_of(&server, &id).await;
    let mut numbers: Vec<&str> = calls.iter().map(|c| c.customer_number.as_str()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!((numbers.len(), calls.len()), (30, 30), "every contact dialed exactly once across the restart");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_requests_are_validated_and_scoped_to_their_workspace() {
    let server = TestServer::start().await;
    let token = server.token().await;
    for (body, field) in [
        (json!({ "agent_number": "918888888888", "caller_ids": ["+919484956750"] }), "name"),
        (json!({ "name": "x", "caller_ids": ["+919484956750"] }), "agent_number"),
        (json!({ "name": "x", "agent_number": "918888888888" }), "caller_ids"),
        (
            json!({ "name": "x", "agent_number": "918888888888", "caller_ids": ["+919484956750"], "calls_per_second": 0 }),
            "calls_per_second",
        ),
        (
            json!({ "name": "x", "agent_number": "918888888888", "caller_ids": ["+919484956750"], "calling_window": { "start": "9am" } }),
            "calling_window",
        ),
        (
            json!({ "name": "x", "agent_number": "918888888888", "caller_ids": ["+919484956750"], "days_of_week": ["funday"] }),
            "days_of_week",
        ),
        (
            json!({ "name": "x", "agent_number": "918888888888", "caller_ids": ["+919484956750"], "retry_policy": { "delays": { "weather": 5 } } }),
            "retry_policy.delays",
        ),
    ] {
        let (status, error) = send(&server, "POST", "/v1/campaigns", &token, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["detail"].as_str().unwrap().contains(field), "{body}: {error}");
    }
    let id = campaign_with(&server, &token, json!({}), vec![json!({ "phone": "+919500000001" })]).await;
    let (_, got) = send(&server, "GET", &format!("/v1/campaigns/{id}"), &token, None).await;
    assert_eq!(
        (got["state"].as_str(), got["window_start"].as_str(), got["max_attempts"].as_u64()),
        (Some("draft"), Some("09:00"), Some(3))
    );
    let (status, patched) =
        send(&server, "PATCH", &format!("/v1/campaigns/{id}"), &token, Some(json!({ "max_concurrent_calls": 9 })))
            .await;
    assert_eq!((status, patched["max_concurrent_calls"].as_u64()), (200, Some(9)));
    let (_, list) = send(&server, "GET", "/v1/campaigns", &token, None).await;
    assert_eq!(list["total"], 1);
    // Contacts by upload: into the contact book and the campaign, with the import's report.
    let file = b"\xEF\xBB\xBFphone,name\r\n+919500000001,Already in\r\n+919500002222,New\r\nbad,Row\r\n";
    let (status, report) =
        crate::contacts::upload(&server, &token, &format!("/v1/campaigns/{id}/contacts/import"), file).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].as_u64(), report["accepted"].as_u64(), report["rejected_count"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(report["added_to_campaign"], 1, "the number already in the campaign is skipped");
    let (_, stats) = send(&server, "GET", &format!("/v1/campaigns/{id}/stats"), &token, None).await;
    assert_eq!(stats["contacts_total"], 2);
    let (status, error) = send(
        &server,
        "POST",
        &format!("/v1/campaigns/{id}/contacts"),
        &token,
        Some(json!({ "contacts": [{ "phone": "12" }], "contact_ids": ["con_nope"] })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(error["rejected"].as_array().unwrap().len(), 2);

    let hash = dialplane::auth::hash_password("other password").unwrap();
    dialplane::store::users::create(&server.db, "other@example.com", &hash, "member").await.unwrap();
    let other = server.login("other@example.com", "other password").await;
    assert_eq!(send(&server, "GET", &format!("/v1/campaigns/{id}"), &other, None).await.0, 404);
    assert_eq!(send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &other, None).await.0, 404);
    assert_eq!(send(&server, "GET", "/v1/campaigns/cmp_missing/stats", &token, None).await.0, 404);
    assert_eq!(send(&server, "POST", &format!("/v1/campaigns/{id}/explode"), &token, None).await.0, 404);
    assert_eq!(send(&server, "DELETE", &format!("/v1/campaigns/{id}"), &token, None).await.0, 204);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_past_its_end_expires_what_is_left_and_completes() {
    let server = TestServer::start().await;
    let token = server.token().await;
    // A window that is closed now in Kolkata, and an end two seconds away.
    let kolkata = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kolkata);
    let start = (kolkata + chrono::Duration::hours(2)).format("%H:%M").to_string();
    let end = (kolkata + chrono::Duration::hours(3)).format("%H:%M").to_string();
    let ends_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let settings = json!({ "calling_window": { "start": start, "end": end }, "ends_at": ends_at });
    let id =
        campaign_with(&server, &token, settings, vec![json!({ "phone": "+919200004321", "timezone": "Asia/Kolkata" })])
            .await;
    send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    wait_for_state(&server, &token, &id, "completed", Duration::from_secs(20)).await;
    let (_, stats) = send(&server, "GET", &format!("/v1/campaigns/{id}/stats"), &token, None).await;
    assert_eq!(stats["contacts"], json!({ "expired": 1 }), "{stats}");
    assert_eq!(stats["attempts"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_whose_calls_can_never_be_created_are_given_up_and_the_campaign_completes() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let agent_id = server.create_agent(&token, "Short-lived").await;
    let settings =
        json!({ "agent_number": agent_id, "caller_ids": [], "calling_window": { "start": "00:00", "end": "23:59" } });
    let contacts = vec![
        json!({ "phone": "+919600001111", "timezone": "UTC" }),
        json!({ "phone": "+919600002222", "timezone": "UTC" }),
    ];
    let id = campaign_with(&server, &token, settings, contacts).await;
    assert_eq!(send(&server, "DELETE", &format!("/api/agents/{agent_id}"), &token, None).await.0, 200);
    send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    wait_for_state(&server, &token, &id, "completed", Duration::from_secs(20)).await;
    let (_, stats) = send(&server, "GET", &format!("/v1/campaigns/{id}/stats"), &token, None).await;
    assert_eq!(stats["contacts"], json!({ "failed": 2 }), "{stats}");
    assert_eq!(stats["attempts"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_of_one_workspace_together_stay_within_its_concurrency_cap() {
    // Calls that last a while, and a workspace cap below what each campaign would take alone.
    let server = TestServer::start_with(ServerOptions {
        sandbox_time_scale: 0.02,
        // The counters are rebuilt from the database every 0.2 s meanwhile (the tests' interval).
        extra: vec![("DIALPLANE_WORKSPACE_MAX_CONCURRENT", "3".into())],
        ..Default::default()
    })
    .await;
    let token = server.token().await;
    let settings = json!({ "max_concurrent_calls": 10, "calls_per_second": 100, "calling_window": { "start": "00:00", "end": "23:59" } });
    let mut ids = Vec::new();
    for campaign in 0..3u32 {
        let contacts = (0..6u32)
            .map(|n| json!({ "phone": format!("+9192{campaign}{n:03}{:04}", 1_000 + n), "timezone": "UTC" }))
            .collect();
        ids.push(campaign_with(&server, &token, settings.clone(), contacts).await);
    }
    for id in &ids {
        send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    }
    for id in &ids {
        wait_for_state(&server, &token, id, "completed", Duration::from_secs(60)).await;
    }
    // Each call was live at least from the carrier's accept to its end: at no moment were more
    // than three of them.
    let accepted = sandbox_log(&server).await;
    let mut edges = Vec::new();
    for id in &ids {
        for call in calls_of(&server, id).await {
            edges.push((accepted[&call.id], 1));
            edges.push((call.ended_at.expect("every call ended"), -1));
        }
    }
    assert_eq!(edges.len(), 2 * 18);
    // At equal times an end comes before an accept.
    edges.sort();
    let (mut live, mut most) = (0, 0);
    for (_, change) in edges {
        live += change;
        most = most.max(live);
    }
    assert!(most <= 3, "{most} calls of the workspace were live at once");
    assert!(most > 1, "calls ran side by side");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_launched_before_its_start_is_scheduled_and_dials_from_its_start_on() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let starts_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let settings =
        json!({ "starts_at": starts_at.to_rfc3339(), "calling_window": { "start": "00:00", "end": "23:59" } });
    let id =
        campaign_with(&server, &token, settings, vec![json!({ "phone": "+919300001234", "timezone": "UTC" })]).await;
    let (status, launched) = send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    assert_eq!((status, launched["state"].as_str()), (200, Some("scheduled")), "{launched}");
    // Launching again changes nothing; a scheduled campaign is not running, so it cannot pause.
    let (status, again) = send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("scheduled")));
    assert_eq!(send(&server, "POST", &format!("/v1/campaigns/{id}/pause"), &token, None).await.0, 409);
    assert_eq!(send(&server, "DELETE", &format!("/v1/campaigns/{id}"), &token, None).await.0, 409);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, status) = send(&server, "GET", &format!("/v1/campaigns/{id}/status"), &token, None).await;
    assert_eq!(status["state"], "scheduled", "{status}");
    assert!(sandbox_log(&server).await.is_empty(), "nothing was dialed before the start");

    wait_for_state(&server, &token, &id, "completed", Duration::from_secs(30)).await;
    let accepted: Vec<_> = sandbox_log(&server).await.into_values().collect();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0] >= starts_at, "dialed at {} before the start {starts_at}", accepted[0]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_campaign_can_be_stopped_before_it_starts() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let starts_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let settings = json!({ "starts_at": starts_at.to_rfc3339() });
    let id =
        campaign_with(&server, &token, settings, vec![json!({ "phone": "+919300005678", "timezone": "UTC" })]).await;
    let (_, launched) = send(&server, "POST", &format!("/v1/campaigns/{id}/launch"), &token, None).await;
    assert_eq!(launched["state"], "scheduled");
    let (status, stopped) = send(&server, "POST", &format!("/v1/campaigns/{id}/stop"), &token, None).await;
    assert_eq!((status, stopped["state"].as_str()), (200, Some("stopped")), "{stopped}");
    let (_, stats) = send(&server, "GET", &format!("/v1/campaigns/{id}/stats"), &token, None).await;
    assert_eq!(stats["contacts"], json!({ "canceled": 1 }), "{stats}");
    server.stop().await;
}
