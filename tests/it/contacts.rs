//! Contacts and do-not-call lists: CRUD with clear errors, bulk writes that merge duplicates, the
//! CSV import report on a file with bad rows, a BOM and CRLF line ends (uploaded as multipart), and
//! do-not-call entries per workspace and per campaign.

use serde_json::{Value, json};

use crate::support::*;

async fn send(server: &TestServer, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    server.send(method, path, token, body).await
}

/// Uploads `file` as the `file` part of a multipart form.
pub async fn upload(server: &TestServer, token: &str, path: &str, file: &[u8]) -> (u16, Value) {
    let boundary = "dialplane-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"contacts.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = server
        .http
        .post(server.url(path))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_created_listed_changed_and_deleted_with_clear_errors() {
    let server = TestServer::start().await;
    let token = server.token().await;

    let (status, rahul) = send(
        &server,
        "POST",
        "/v1/contacts",
        Some(&token),
        Some(json!({"phone": "098765 43210", "name": "Rahul", "metadata": {"city": "Mumbai"}})),
    )
    .await;
    assert_eq!(status, 201, "{rahul}");
    assert_eq!(rahul["phone"], "+919876543210", "national numbers take the default country");
    assert_eq!(rahul["timezone"], "Asia/Kolkata", "inferred from +91");
    assert_eq!(rahul["metadata"]["city"], "Mumbai");
    let id = rahul["id"].as_str().unwrap();
    let (status, error) =
        send(&server, "POST", "/v1/contacts", Some(&token), Some(json!({"phone": "+919876543210"}))).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("conflict")), "{error}");

    let (status, us) = send(
        &server,
        "POST",
        "/v1/contacts?default_country=US",
        Some(&token),
        Some(json!({"phone": "(415) 555-0100", "timezone": "America/Denver"})),
    )
    .await;
    assert_eq!(status, 201, "{us}");
    assert_eq!(
        (us["phone"].as_str(), us["timezone"].as_str()),
        (Some("+14155550100"), Some("America/Denver")),
        "an explicit timezone wins"
    );

    for (body, field) in [
        (json!({}), "phone"),
        (json!({"phone": "12"}), "phone"),
        (json!({"phone": "+14155550101", "timezone": "Mars/Base"}), "timezone"),
        (json!({"phone": "+14155550101", "metadata": [1]}), "metadata"),
    ] {
        let (status, error) = send(&server, "POST", "/v1/contacts", Some(&token), Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["detail"].as_str().unwrap().starts_with(field), "{body}: {error}");
    }
    assert_eq!(
        send(&server, "POST", "/v1/contacts?default_country=XX", Some(&token), Some(json!({"phone": "1"}))).await.0,
        400
    );

    let (_, listed) = send(&server, "GET", "/v1/contacts?search=rah", Some(&token), None).await;
    assert_eq!(listed["total"], 1);
    let (_, by_zone) = send(&server, "GET", "/v1/contacts?timezone=America/Denver", Some(&token), None).await;
    assert_eq!(by_zone["items"][0]["phone"], "+14155550100");
    let (status, patched) =
        send(&server, "PATCH", &format!("/v1/contacts/{id}"), Some(&token), Some(json!({"name": "Rahul K"}))).await;
    assert_eq!(
        (status, patched["name"].as_str(), patched["metadata"]["city"].as_str()),
        (200, Some("Rahul K"), Some("Mumbai"))
    );
    let (status, _) =
        send(&server, "PATCH", &format!("/v1/contacts/{id}"), Some(&token), Some(json!({"phone": "+14155550100"})))
            .await;
    assert_eq!(status, 409, "a number already taken");
    let (status, error) = send(&server, "GET", "/v1/contacts/con_missing", Some(&token), None).await;
    assert_eq!((status, error["detail"].as_str()), (404, Some("Contact not found")));
    assert_eq!(send(&server, "DELETE", &format!("/v1/contacts/{id}"), Some(&token), None).await.0, 204);
    assert_eq!(send(&server, "GET", &format!("/v1/contacts/{id}"), Some(&token), None).await.0, 404);

    // Bulk: duplicates merge, bad entries are reported by index, nothing else is lost.
    let (status, report) = send(
        &server,
        "POST",
        "/v1/contacts/bulk",
        Some(&token),
        Some(json!([
            {"phone": "+919000000001", "name": "A"},
            {"phone": "+919000000002"},
            {"phone": "bad"},
            {"phone": "9000000001", "metadata": {"plan": "pro"}},
            {"phone": "+14155550100", "name": "Already here"}
        ])),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["total"].as_u64(), report["accepted"].as_u64(), report["created"].as_u64(), report["merged"].as_u64()),
        (Some(5), Some(4), Some(2), Some(2))
    );
    assert_eq!(report["rejected"][0]["index"], 2);
    let (_, denver) = send(&server, "GET", "/v1/contacts?search=4155550100", Some(&token), None).await;
    assert_eq!(denver["items"][0]["timezone"], "America/Denver", "a merge never replaces a set timezone with a guess");
    assert_eq!(denver["items"][0]["name"], "Already here");
    let (_, merged) = send(&server, "GET", "/v1/contacts?search=9000000001", Some(&token), None).await;
    assert_eq!(
        (merged["items"][0]["name"].as_str(), merged["items"][0]["metadata"]["plan"].as_str()),
        (Some("A"), Some("pro"))
    );
    assert_eq!(send(&server, "POST", "/v1/contacts/bulk", Some(&token), Some(json!([]))).await.0, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_reports_every_row_and_merges_duplicates() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let file = b"\xEF\xBB\xBFphone,name,plan,timezone\r\n\
        98765 43210,Rahul,pro,\r\n\
        +1 415 555 0100,\"Smith, Jane\",basic,\r\n\
        12345,Too short,basic,\r\n\
        +919876543210,Rahul again,gold,\r\n\
        +442079460958,Tom,basic,Mars/Base\r\n\
        +6591234567,Ann,pro,Asia/Singapore\r\n\
        +61212345678,Extra,column,,here\r\n";
    let (status, report) = upload(&server, &token, "/v1/contacts/import", file).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["rows"], 7);
    assert_eq!(
        (report["accepted"].as_u64(), report["created"].as_u64(), report["merged"].as_u64()),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(report["rejected_count"], 3);
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 5, 7]);
    assert!(rejected[1].1.contains("Mars/Base"));
    assert_eq!(
        report["accepted"].as_u64().unwrap() + report["rejected_count"].as_u64().unwrap(),
        7,
        "accepted + rejected = rows"
    );
    let (_, rahul) = send(&server, "GET", "/v1/contacts?search=9876543210", Some(&token), None).await;
    assert_eq!(rahul["total"], 1);
    assert_eq!(rahul["items"][0]["name"], "Rahul again", "the later row merged into the earlier one");
    assert_eq!(rahul["items"][0]["metadata"]["plan"], "gold");
    let (_, all) = send(&server, "GET", "/v1/contacts", Some(&token), None).await;
    assert_eq!(all["total"], 3);

    let (status, error) = upload(&server, &token, "/v1/contacts/import", b"name,city\nRahul,Mumbai\n").await;
    assert_eq!(status, 400);
    assert!(error["detail"].as_str().unwrap().contains("phone column"), "{error}");

    // A larger file, streamed: every row is accounted for.
    let mut big = b"phone,name\n".to_vec();
    for n in 0..5_000u64 {
        big.extend_from_slice(format!("9{n:09},Contact {n}\n").as_bytes());
    }
    big.extend_from_slice(b"not-a-number,Bad\n");
    let (status, report) = upload(&server, &token, "/v1/contacts/import", &big).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].as_u64(), report["accepted"].as_u64(), report["rejected_count"].as_u64()),
        (Some(5_001), Some(5_000), Some(1))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_call_lists_per_workspace_and_per_campaign() {
    let server = TestServer::start().await;
    let token = server.token().await;

    let (status, added) =
        send(&server, "POST", "/v1/dnc", Some(&token), Some(json!({"phone": "98765 43210", "reason": "asked"}))).await;
    assert_eq!((status, added["phone"].as_str()), (201, Some("+919876543210")), "{added}");
    assert_eq!(
        send(&server, "POST", "/v1/dnc", Some(&token), Some(json!({"phone": "+919876543210"}))).await.0,
        200,
        "already listed"
    );
    assert_eq!(send(&server, "POST", "/v1/dnc", Some(&token), Some(json!({"phone": "x"}))).await.0, 400);
    let (status, bulk) = send(
        &server,
        "POST",
        "/v1/dnc/bulk",
        Some(&token),
        Some(json!({"phones": ["+919000000001", "+919876543210", "nope"], "campaign_id": "cmp_1"})),
    )
    .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(
        (bulk["added"].as_u64(), bulk["already_listed"].as_u64()),
        (Some(2), Some(0)),
        "the campaign's list is its own"
    );
    assert_eq!(bulk["rejected"][0]["index"], 2);

    let (_, workspace) = send(&server, "GET", "/v1/dnc", Some(&token), None).await;
    assert_eq!(workspace["total"], 1);
    let (_, campaign) = send(&server, "GET", "/v1/dnc?campaign_id=cmp_1", Some(&token), None).await;
    assert_eq!(campaign["total"], 2);

    let user = dialplane::store::users::find_by_email(&server.db, EMAIL).await.unwrap().unwrap();
    let phones = vec!["+919876543210".to_string(), "+919000000001".to_string(), "+919000000002".to_string()];
    let blocked =
        dialplane::contacts::store::blocked(&server.db, &user.workspace_id, Some("cmp_1"), &phones).await.unwrap();
    assert_eq!(blocked.len(), 2, "the workspace's list and the campaign's: {blocked:?}");
    let blocked =
        dialplane::contacts::store::blocked(&server.db, &user.workspace_id, Some("cmp_2"), &phones).await.unwrap();
    assert_eq!(blocked.into_iter().collect::<Vec<_>>(), ["+919876543210"]);

    assert_eq!(send(&server, "DELETE", "/v1/dnc/%2B919876543210", Some(&token), None).await.0, 204);
    assert_eq!(send(&server, "DELETE", "/v1/dnc/%2B919876543210", Some(&token), None).await.0, 404);
    assert_eq!(send(&server, "DELETE", "/v1/dnc/9000000001?campaign_id=cmp_1", Some(&token), None).await.0, 204);
    server.stop().await;
}
