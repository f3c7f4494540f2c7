//! The OpenAPI 3.1 document, generated from [`crate::routes::ROUTES`].
//!
//! Nothing here is written by hand: paths, parameters, bodies and answers all
//! come from the table and the types it names, so the document cannot say
//! something the edge does not enforce. `docs/openapi.json` is a committed
//! copy that a test keeps equal to this output.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::codec::Payload;
use crate::problem::Problem;
use crate::routes::{Access, ROUTES, Segment, ServedBy, compile, openapi_path};

/// Builds the document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let problem = generator.subschema_for::<Problem>();
    let problem_content = json!({ crate::problem::CONTENT_TYPE: { "schema": problem } });

    let mut paths = Map::new();
    for route in ROUTES {
        let mut parameters = Vec::new();
        for seg in compile(route.path) {
            if let Segment::Param { name, kind } = seg {
                parameters.push(json!({"name": name, "in": "path", "required": true, "schema": kind.schema()}));
            }
        }
        for q in route.query {
            parameters.push(json!({"name": q.name, "in": "query", "required": false, "description": q.doc, "schema": q.kind.schema()}));
        }

        let mut responses = Map::new();
        for r in route.responses {
            let mut answer = json!({"description": r.doc});
            match r.body {
                Some(Payload::Json(body)) => {
                    answer["content"] = json!({"application/json": {"schema": (body.schema)(&mut generator)}});
                }
                Some(Payload::Text(text)) => {
                    answer["content"] =
                        json!({ text.content_type: {"schema": {"type": "string", "maxLength": text.max_len}} });
                }
                Some(Payload::EventStream) => {
                    answer["content"] = json!({ crate::codec::EVENT_STREAM: {
                        "schema": {"type": "string"},
                        "x-rampart-event-data": generator.subschema_for::<crate::api::ChangeEvent>(),
                    }});
                }
                None => {}
            }
            if let ServedBy::Asset { content_type } = route.served_by {
                answer["content"] = json!({ content_type: {"schema": {"type": "string"}} });
            }
            responses.insert(r.status.to_string(), answer);
        }
        responses.insert(
            "default".into(),
            json!({"description": "An RFC 9457 problem document.", "content": problem_content}),
        );

        let mut op = json!({
            "operationId": route.operation,
            "summary": route.summary,
            "parameters": parameters,
            "responses": responses,
            "x-rampart-access": route.access.as_str(),
        });
        op["security"] = match route.access {
            Access::Public => json!([]),
            _ => json!([{"session": []}, {"bearer": []}]),
        };
        if let Some(body) = route.body {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": (body.schema)(&mut generator)}},
            });
            op["x-rampart-body-limit"] = json!(route.body_limit);
        }
        let entry = paths.entry(openapi_path(route.path)).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = op;
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Rampart",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Rampart REST API. Every request is validated by the edge against this document before the core sees it.",
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::wire::SESSION_COOKIE,
                    "description": "Session cookie from /api/v1/auth/login; state-changing requests also need X-CSRF-Token."},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    })
}

/// The document as pretty JSON with a trailing newline, as committed.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::routes::Method;

    /// Every `$ref` in the document points at a component that exists.
    fn check_refs(value: &Value, doc: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let pointer = r.strip_prefix('#').unwrap();
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                }
                map.values().for_each(|v| check_refs(v, doc));
            }
            Value::Array(items) => items.iter().for_each(|v| check_refs(v, doc)),
            _ => {}
        }
    }

    #[test]
    fn document_and_route_table_agree() {
        let doc = document();
        check_refs(&doc, &doc);
        let paths = doc["paths"].as_object().unwrap();

        // Every route is in the document, exactly as the table says.
        let mut ops = 0;
        for route in ROUTES {
            let op = &paths[&openapi_path(route.path)][route.method.as_str().to_ascii_lowercase()];
            assert_eq!(
                op["operationId"],
                route.operation,
                "{} {}",
                route.method.as_str(),
                route.path
            );
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let mut expected: Vec<&str> = compile(route.path)
                .into_iter()
                .filter_map(|s| match s {
                    Segment::Param { name, .. } => Some(name),
                    Segment::Literal(_) => None,
                })
                .collect();
            expected.extend(route.query.iter().map(|q| q.name));
            assert_eq!(params, expected, "{}", route.operation);
            assert_eq!(
                op.get("requestBody").is_some(),
                route.body.is_some(),
                "{}",
                route.operation
            );
            if let Some(body) = route.body {
                let r = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap();
                assert!(r.ends_with(&format!("/{}", (body.name)())), "{}: {r}", route.operation);
            }
            let statuses: Vec<&String> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "default")
                .collect();
            assert_eq!(statuses.len(), route.responses.len(), "{}", route.operation);
            for r in route.responses {
                assert!(
                    op["responses"].get(r.status.to_string()).is_some(),
                    "{}: {}",
                    route.operation,
                    r.status
                );
            }
            ops += 1;
        }

        // And the document has nothing the table does not.
        let mut doc_ops = 0;
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                let method = Method::parse(&method.to_ascii_uppercase()).unwrap();
                assert!(
                    ROUTES
                        .iter()
                        .any(|r| r.method == method && openapi_path(r.path) == *path),
                    "document has {path} {method:?} that the table lacks"
                );
                doc_ops += 1;
            }
        }
        assert_eq!(ops, doc_ops);
    }

    /// `docs/openapi.json` is the generated document. Regenerate it with
    /// `RAMPART_UPDATE_OPENAPI=1 cargo test -p schemas`.
    #[test]
    fn committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let generated = document_text();
        if std::env::var_os("RAMPART_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is stale: run RAMPART_UPDATE_OPENAPI=1 cargo test -p schemas"
        );
    }
}
