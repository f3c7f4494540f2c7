//! Every class of bad input gets its status and a problem document from the
//! edge, and none of it reaches the core (the audit log shows no trace).

use harness::Rampart;
use harness::api::Session;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn problem(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].as_str().unwrap().starts_with("urn:rampart:problem:"));
    assert!(body["title"].is_string() && body["detail"].is_string());
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36);
    (status, body)
}

fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_answers_bad_input_itself() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let (_, before) = s.get("/api/v1/audit?limit=500").await;
    let audited_before = before["items"].as_array().unwrap().len();

    // Unknown path, and near misses of real ones.
    for path in [
        "/nope",
        "/api/v1/orgs/",
        "/api/v1//orgs",
        "/API/V1/ORGS",
        "/api/v1/orgs/x/y",
        "/api/v2/orgs",
    ] {
        let (status, _) = problem(s.request(Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }

    // Known path, wrong method: 405 with Allow.
    let r = s
        .request(Method::PUT, "/api/v1/orgs")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    let (status, _) = problem(r).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(allow, "GET, POST");

    // Malformed ids are 404s, never forwarded.
    for id in [
        "123",
        "not-a-uuid",
        "0192f0c48c3e7a6b9a8b0123456789ab",
        "{0192f0c4-8c3e-7a6b-9a8b-0123456789ab}",
        "0192f0c4-8c3e-7a6b-9a8b-0123456789ag",
        "..%2F..%2Fetc",
    ] {
        let (status, _) = problem(
            s.request(Method::GET, &format!("/api/v1/orgs/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }

    // Not JSON: 415.
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=latin1"),
    ] {
        let mut rb = s.request(Method::POST, "/api/v1/orgs").body(r#"{"name":"x"}"#);
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        let (status, _) = problem(rb.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }

    // Over the route's limit: 413, whether declared or streamed.
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(8 * 1024));
    let (status, _) = problem(
        s.request(Method::POST, "/api/v1/orgs")
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let stream = reqwest::Body::wrap_stream(futures_stream(big.into_bytes()));
    let (status, _) = problem(
        s.request(Method::POST, "/api/v1/orgs")
            .header("content-type", "application/json")
            .body(stream)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A body on a route that takes none.
    let (status, _) = problem(
        s.request(Method::DELETE, &format!("/api/v1/orgs/{}", uuid::Uuid::now_v7()))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // 400s that name the field.
    let cases: &[(&str, &[&str])] = &[
        (r#"{"name":"#, &["body"]),
        (r#"{"name":"a"} trailing"#, &["body"]),
        (r#"["a"]"#, &["body"]),
        (r#""a""#, &["body"]),
        (r#"{"name":"a","admin":true}"#, &["admin"]),
        (r#"{"name":5}"#, &["name"]),
        (r#"{"name":null}"#, &["name"]),
        (r#"{}"#, &["name"]),
        (r#"{"name":""}"#, &["name"]),
        (r#"{"name":" padded"}"#, &["name"]),
        (r#"{"name":"a\u0000b"}"#, &["name"]),
        (r#"{"name":"a","name":"b"}"#, &["name"]),
    ];
    for (body, expected) in cases {
        let r = s
            .request(Method::POST, "/api/v1/orgs")
            .header("content-type", "application/json")
            .body(*body)
            .send()
            .await
            .unwrap();
        let (status, problem) = problem(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(fields(&problem), *expected, "{body}: {problem}");
    }
    let long = json!({"name": "x".repeat(65)});
    let (status, p) = s.send(Method::POST, "/api/v1/orgs", long).await;
    assert_eq!((status, fields(&p)), (StatusCode::BAD_REQUEST, vec!["name".to_owned()]));
    // Several bad fields at once are all named.
    let r = rampart
        .client()
        .post(rampart.url("/api/v1/setup"))
        .json(&json!({"token": "short", "username": "X", "password": "short"}))
        .send()
        .await
        .unwrap();
    let (status, p) = problem(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!fields(&p).is_empty());
    // An empty PATCH says which field is missing.
    let (status, p) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/orgs/{}", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!((status, fields(&p)), (StatusCode::BAD_REQUEST, vec!["name".to_owned()]));

    // Query strings are typed too.
    for (query, field) in [
        ("limit=0", "query.limit"),
        ("limit=501", "query.limit"),
        ("limit=x", "query.limit"),
        ("bogus=1", "query.bogus"),
        ("limit=1&limit=2", "query.limit"),
    ] {
        let (status, p) = problem(
            s.request(Method::GET, &format!("/api/v1/orgs?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, fields(&p)),
            (StatusCode::BAD_REQUEST, vec![field.to_owned()]),
            "{query}"
        );
    }
    let (status, p) = problem(
        s.request(Method::GET, "/api/v1/audit?since=yesterday")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, fields(&p)),
        (StatusCode::BAD_REQUEST, vec!["query.since".to_owned()])
    );

    // Nothing above reached the core: the audit log did not grow.
    let (_, after) = s.get("/api/v1/audit?limit=500").await;
    assert_eq!(after["items"].as_array().unwrap().len(), audited_before, "{after}");
}

/// A body sent in chunks without a Content-Length.
fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Vec<u8>> = bytes.chunks(1024).map(<[u8]>::to_vec).collect();
    tokio_stream::iter(chunks.into_iter().map(Ok))
}
