//! The served document and the served routes are the same set: every documented operation
//! is answered by its handler, every other method of a documented path is 405 with
//! `Allow` naming exactly the documented ones. (A path that is not documented cannot be
//! served: routes enter the router only with their documentation, `api::openapi::Routes`.)
//! And every operation documents the errors of its class of route.

use reqwest::header::ALLOW;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use store::Backend;
use tests::{TestApp, spawn_app};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// `path` with each `{parameter}` replaced by a value of the right shape.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                "00000000-0000-4000-8000-000000000000"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_documented_operation_is_served_and_nothing_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 50, "{} paths", paths.len());
    for (path, item) in paths {
        let documented: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        assert!(!documented.is_empty(), "{path}");
        let url = concrete(path);
        for method in METHODS {
            let upper = method.to_uppercase();
            let response = app
                .request(Method::from_bytes(upper.as_bytes()).unwrap(), &url, None)
                .send()
                .await
                .unwrap();
            let status = response.status();
            if documented.contains(&upper) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{upper} {path}");
                if status == StatusCode::NOT_FOUND {
                    let body: Value = response.json().await.unwrap();
                    assert_ne!(
                        body["error"]["code"], "not_found",
                        "{upper} {path} is routed"
                    );
                }
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{upper} {path}");
                let allowed: BTreeSet<String> = response.headers()[ALLOW]
                    .to_str()
                    .unwrap()
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| m != "HEAD")
                    .collect();
                assert_eq!(allowed, documented, "Allow of {path}");
            }
        }
    }
}

async fn every_operation_documents_its_errors_and_security(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["session", "api_token", "cli_token", "operator"] {
        assert_eq!(schemes[scheme]["scheme"], "bearer", "{scheme}");
    }
    let mut operation_ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let name = format!("{method} {path}");
            let id = operation["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id.to_owned()), "{name}: {id} repeated");
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("503"), "{name}: timeouts");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}"
                    );
                    assert!(
                        response["description"].as_str().unwrap().contains('`'),
                        "{name} {status} names its codes"
                    );
                }
            }
            let security = operation["security"].as_array();
            let scheme = security
                .and_then(|s| s.first())
                .and_then(|s| s.as_object())
                .and_then(|s| s.keys().next().cloned());
            if let Some(scheme) = &scheme {
                assert!(responses.contains_key("401"), "{name}");
                if scheme == "api_token" {
                    assert!(responses.contains_key("403"), "{name}: scopes");
                    assert_eq!(security.unwrap()[0][scheme].as_array().unwrap().len(), 1);
                }
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let has = |place: &str| parameters.iter().any(|p| p["in"] == place);
            if has("path") || has("query") {
                assert!(
                    responses.contains_key("400"),
                    "{name}: malformed parameters"
                );
            }
            let json_body = operation["requestBody"]["content"]["application/json"].is_object();
            if json_body {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{name}: {status}");
                }
            }
            if method != "get" {
                assert!(
                    parameters.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{name}: Idempotency-Key"
                );
            }
        }
    }
    // Links name operations that exist, the OpenAPI way (`operationId`).
    let mut links = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for response in operation["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = link["operationId"].as_str().expect("operationId");
                    assert!(operation_ids.contains(target), "{target}");
                    links += 1;
                }
            }
        }
    }
    assert!(links >= 8, "{links} links");
    let public: Vec<&str> = ["/auth/register", "/auth/login", "/healthz", "/plans"].to_vec();
    for path in public {
        let operation = doc["paths"][path]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        assert!(operation.get("security").is_none(), "{path} is public");
    }
}

async fn request_constraints_follow_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let packs: Vec<String> = app
        .state
        .payments
        .billing
        .catalog()
        .packs
        .iter()
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(
        schemas["PurchaseRequest"]["properties"]["pack_id"]["enum"],
        serde_json::json!(packs)
    );
    assert_eq!(
        schemas["ChangePlanRequest"]["properties"]["plan_id"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        app.state.payments.billing.catalog().plans.len()
    );
    // A body taking a code or a recovery code says it takes at most one (`factor()`
    // refuses both with 422): every such body, including ones added later.
    let with_both: Vec<&String> = schemas
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, schema)| {
            let text = schema.to_string();
            text.contains("\"totp_code\"") && text.contains("\"recovery_code\"")
        })
        .map(|(name, _)| name)
        .collect();
    assert!(with_both.len() >= 3, "{with_both:?}");
    for name in with_both {
        assert!(
            schemas[name]["allOf"][1]["anyOf"].is_array(),
            "{name} says at most one of totp_code and recovery_code"
        );
    }
    // A webhook's object is a checkout session for a completed checkout, any object for
    // the types the service ignores (it acknowledges them unread).
    let object = &schemas["WebhookData"]["properties"]["object"]["anyOf"];
    assert_eq!(object[0]["$ref"], "#/components/schemas/CheckoutSession");
    assert_eq!(object[1], serde_json::json!({"type": "object"}));
    assert!(schemas["CheckoutSession"]["properties"]["amount_total"].is_object());
    let register = &schemas["RegisterRequest"]["properties"];
    assert_eq!(
        register["password"]["$ref"],
        "#/components/schemas/NewPassword"
    );
    assert_eq!(schemas["NewPassword"]["minLength"], 8);
    assert_eq!(schemas["NewPassword"]["maxLength"], 128);
    assert!(register["email"]["pattern"].is_string());
    assert_eq!(schemas["CreateCliToken"]["additionalProperties"], false);
    assert_eq!(
        schemas["DeleteAccountRequest"]["properties"]["confirm"]["enum"],
        serde_json::json!(["DELETE"])
    );
    let limit = doc["paths"]["/me/credits/transactions"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()
        .clone();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&1.into(), &200.into())
    );
}

on_both_backends!(
    every_documented_operation_is_served_and_nothing_else,
    every_operation_documents_its_errors_and_security,
    request_constraints_follow_the_server,
);
