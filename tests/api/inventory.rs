//! Stores, products and stock transactions against the real server.

use crate::helpers::*;
use serde_json::{json, Value};
use std::sync::Arc;

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> reqwest::Response {
    s.http.post(s.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn store(s: &TestServer, token: &str, allow_negative: bool) -> String {
    let r = post(s, token, "/api/v1/stores", json!({"name": "Centro", "allowNegativeStock": allow_negative})).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn product(s: &TestServer, token: &str, store: &str, sku: &str, stock: i64) {
    let r = post(
        s,
        token,
        &format!("/api/v1/stores/{store}/products"),
        json!({"sku": sku, "name": "Café 500 g", "price": 89.5, "lowStockThreshold": 10}),
    )
    .await;
    assert_eq!(r.status(), 201);
    if stock > 0 {
        let r = post(
            s,
            token,
            "/api/v1/inventory/transactions",
            json!({"transactionId": uuid::Uuid::new_v4(), "storeId": store, "sku": sku, "type": "PURCHASE", "quantity": stock}),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
}

async fn stock(s: &TestServer, token: &str, store: &str, sku: &str) -> i64 {
    let v = s.get_json(&format!("/api/v1/stores/{store}/products"), token).await;
    v["items"].as_array().unwrap().iter().find(|p| p["sku"] == sku).unwrap()["stock"].as_i64().unwrap()
}

/// 32 clients sell 5 units each of the same SKU at once, each sending its
/// request twice; returns (applied, refused with the stock left).
async fn rush(s: &Arc<TestServer>, token: &str, store: &str, sku: &str) -> (usize, Vec<i64>) {
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (s, token, store, sku) = (s.clone(), token.to_string(), store.to_string(), sku.to_string());
        tasks.push(tokio::spawn(async move {
            let body = json!({"transactionId": uuid::Uuid::new_v4(), "storeId": store, "sku": sku, "type": "SALE", "quantity": 5});
            let first = post(&s, &token, "/api/v1/inventory/transactions", body.clone()).await;
            let first_status = first.status().as_u16();
            let first_body: Value = first.json().await.unwrap();
            // The client retries (say its connection dropped): the same transactionId is the same sale.
            let again = post(&s, &token, "/api/v1/inventory/transactions", body).await;
            let again_status = again.status().as_u16();
            let again_body: Value = again.json().await.unwrap();
            if first_status == 201 {
                assert_eq!(again_status, 200, "{again_body}");
                assert_eq!(again_body, first_body, "a retry answers the first result");
            }
            (first_status, first_body)
        }));
    }
    let (mut applied, mut refused) = (0, Vec::new());
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => applied += 1,
            409 => {
                assert_eq!(body["error"]["code"], "insufficient_stock", "{body}");
                refused.push(body["error"]["details"]["stock"].as_i64().unwrap());
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (applied, refused)
}

#[tokio::test]
async fn thirty_two_clients_selling_one_sku_lose_no_update_and_no_sale_applies_twice() {
    let s = Arc::new(TestServer::start().await);
    let admin = s.login(ADMIN).await;

    // A store that refuses to go below zero: 100 units, 160 asked for.
    let strict = store(&s, &admin, false).await;
    product(&s, &admin, &strict, "CAFE-500", 100).await;
    let (applied, refused) = rush(&s, &admin, &strict, "CAFE-500").await;
    assert_eq!(applied, 20, "exactly the stock was sold");
    assert_eq!(refused.len(), 12);
    assert!(refused.iter().all(|left| *left == 0), "each refusal tells the stock left: {refused:?}");
    assert_eq!(stock(&s, &admin, &strict, "CAFE-500").await, 0);

    // A store that records them and lets the alerts say so.
    let loose = store(&s, &admin, true).await;
    product(&s, &admin, &loose, "CAFE-500", 100).await;
    let (applied, refused) = rush(&s, &admin, &loose, "CAFE-500").await;
    assert_eq!((applied, refused.len()), (32, 0));
    assert_eq!(stock(&s, &admin, &loose, "CAFE-500").await, 100 - 32 * 5);

    let alerts = s.get_json("/api/v1/alerts?status=open", &admin).await;
    let mine: Vec<&Value> = alerts["items"].as_array().unwrap().iter().filter(|a| a["storeId"] == loose.as_str()).collect();
    let kinds: Vec<&str> = mine.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "negative_stock").count(), 1, "raised once however many sales went below: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "low_stock").count(), 1, "{kinds:?}");
    let negative = mine.iter().find(|a| a["kind"] == "negative_stock").unwrap();
    // Paged newest first.
    let first = s.get_json("/api/v1/alerts?limit=1", &admin).await;
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let second = s.get_json(&format!("/api/v1/alerts?limit=1&cursor={cursor}"), &admin).await;
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);
    assert_eq!(negative["severity"], "critical");
    assert!(negative["stock"].as_i64().unwrap() < 0);

    // Stock restored: the negative alert resolves itself, the low one stays until stock is over the threshold.
    let r = post(
        &s,
        &admin,
        "/api/v1/inventory/transactions",
        json!({"transactionId": uuid::Uuid::new_v4(), "storeId": loose, "sku": "CAFE-500", "type": "PURCHASE", "quantity": 65}),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["stockAfter"], 5);
    let open = s.get_json("/api/v1/alerts?status=open", &admin).await;
    let still: Vec<&str> =
        open["items"].as_array().unwrap().iter().filter(|a| a["storeId"] == loose.as_str()).map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(still, vec!["low_stock"]);
    let resolved = s.get_json("/api/v1/alerts?status=resolved", &admin).await;
    let gone = resolved["items"].as_array().unwrap().iter().find(|a| a["storeId"] == loose.as_str()).unwrap();
    assert_eq!(gone["kind"], "negative_stock");
    assert!(gone["resolvedAt"].is_string() && gone.get("resolvedBy").is_none(), "resolved by the stock, not by a person: {gone}");
}

#[tokio::test]
async fn transfers_move_stock_between_stores_in_one_step_both_ways_at_once() {
    let s = Arc::new(TestServer::start().await);
    let admin = s.login(ADMIN).await;
    let (a, b) = (store(&s, &admin, false).await, store(&s, &admin, false).await);
    product(&s, &admin, &a, "TE-20", 500).await;
    product(&s, &admin, &b, "TE-20", 500).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (s, admin) = (s.clone(), admin.clone());
        let (from, to) = if i % 2 == 0 { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        tasks.push(tokio::spawn(async move {
            let q = 1 + (i % 3) as i64;
            let r = post(&s, &admin, "/api/v1/inventory/transactions", json!({"transactionId": uuid::Uuid::new_v4(), "storeId": from, "sku": "TE-20", "type": "TRANSFER", "quantity": q, "toStoreId": to})).await;
            assert_eq!(r.status(), 201);
            if i % 2 == 0 {
                -q
            } else {
                q
            }
        }));
    }
    let mut net_a = 0;
    for t in tasks {
        net_a += t.await.unwrap();
    }
    let (sa, sb) = (stock(&s, &admin, &a, "TE-20").await, stock(&s, &admin, &b, "TE-20").await);
    assert_eq!(sa, 500 + net_a);
    assert_eq!(sa + sb, 1000, "nothing created or lost");

    // One transactionId sent at once naming two different stores is applied once.
    for _ in 0..10 {
        let id = uuid::Uuid::new_v4();
        let (ra, rb) = tokio::join!(
            post(
                &s,
                &admin,
                "/api/v1/inventory/transactions",
                json!({"transactionId": id, "storeId": a, "sku": "TE-20", "type": "SALE", "quantity": 1})
            ),
            post(
                &s,
                &admin,
                "/api/v1/inventory/transactions",
                json!({"transactionId": id, "storeId": b, "sku": "TE-20", "type": "SALE", "quantity": 1})
            ),
        );
        let mut codes = vec![ra.status().as_u16(), rb.status().as_u16()];
        codes.sort();
        assert_eq!(codes, vec![201, 409], "one applied, the other refused as a reused id");
    }
    let (sa2, sb2) = (stock(&s, &admin, &a, "TE-20").await, stock(&s, &admin, &b, "TE-20").await);
    assert_eq!(sa2 + sb2, 1000 - 10, "ten sales, not twenty");
}

#[tokio::test]
async fn bad_transactions_get_typed_errors_change_nothing_and_roles_hold() {
    let s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let viewer = s.login(READONLY).await;
    let st = store(&s, &admin, false).await;
    product(&s, &admin, &st, "PAN-1", 10).await;
    let txn = |store: &str, sku: &str, kind: &str, q: i64| json!({"transactionId": uuid::Uuid::new_v4(), "storeId": store, "sku": sku, "type": kind, "quantity": q});
    let path = "/api/v1/inventory/transactions";
    for (body, status, code) in [
        (txn(&st, "PAN-1", "SALE", 0), 422, "invalid_quantity"),
        (txn(&st, "PAN-1", "PURCHASE", -3), 422, "invalid_quantity"),
        (txn(&st, "PAN-1", "ADJUSTMENT", 0), 422, "invalid_quantity"),
        (txn(&st, "PAN-1", "SALE", 11), 409, "insufficient_stock"),
        (txn(&st, "PAN-1", "TRANSFER", 1), 422, "invalid_transfer"),
        (txn(&st, "NOPE", "SALE", 1), 404, "product_not_found"),
        (txn(&uuid::Uuid::new_v4().to_string(), "PAN-1", "SALE", 1), 404, "store_not_found"),
        (txn(&st, "PAN-1", "GIFT", 1), 422, "validation_failed"),
        (json!({"storeId": st, "sku": "PAN-1", "type": "SALE", "quantity": 1}), 422, "validation_failed"),
    ] {
        assert_eq!(TestServer::error_code(post(&s, &admin, path, body.clone()).await, status).await, code, "{body}");
    }
    // The same transactionId for something else is refused.
    let id = uuid::Uuid::new_v4();
    let first = json!({"transactionId": id, "storeId": st, "sku": "PAN-1", "type": "SALE", "quantity": 1});
    assert_eq!(post(&s, &admin, path, first).await.status(), 201);
    let other = json!({"transactionId": id, "storeId": st, "sku": "PAN-1", "type": "SALE", "quantity": 2});
    assert_eq!(TestServer::error_code(post(&s, &admin, path, other).await, 409).await, "transaction_id_reused");

    // Roles: agents sell from a conversation only; read-only users change nothing.
    assert_eq!(post(&s, &agent, path, txn(&st, "PAN-1", "SALE", 1)).await.status(), 403, "no conversation");
    assert_eq!(post(&s, &agent, path, txn(&st, "PAN-1", "PURCHASE", 1)).await.status(), 403);
    assert_eq!(post(&s, &viewer, path, txn(&st, "PAN-1", "PURCHASE", 1)).await.status(), 403);
    assert_eq!(post(&s, &agent, "/api/v1/stores", json!({"name": "x"})).await.status(), 403);
    let conv = s.create_conversation(&agent).await;
    let mut sale = txn(&st, "PAN-1", "SALE", 2);
    sale["conversationId"] = json!(conv);
    let r = post(&s, &agent, path, sale).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["conversationId"], conv.as_str(), "the sale is linked to its conversation");
    let mut ghost = txn(&st, "PAN-1", "SALE", 1);
    ghost["conversationId"] = json!(uuid::Uuid::new_v4());
    assert_eq!(post(&s, &agent, path, ghost).await.status(), 404);

    // Bad stores and products.
    for (body, code) in [
        (json!({"name": ""}), "validation_failed"),
        (json!({"name": "x", "managerEmail": "nobody"}), "validation_failed"),
        (json!({"name": "x", "extra": 1}), "validation_failed"),
    ] {
        assert_eq!(TestServer::error_code(post(&s, &admin, "/api/v1/stores", body.clone()).await, 422).await, code, "{body}");
    }
    let products = format!("/api/v1/stores/{st}/products");
    let dup = json!({"sku": "PAN-1", "name": "otro", "price": 1.0});
    assert_eq!(TestServer::error_code(post(&s, &admin, &products, dup).await, 409).await, "product_exists");
    let bad_price = json!({"sku": "X", "name": "x", "price": -1.0});
    assert_eq!(TestServer::error_code(post(&s, &admin, &products, bad_price).await, 422).await, "validation_failed");
    let nowhere = format!("/api/v1/stores/{}/products", uuid::Uuid::new_v4());
    assert_eq!(post(&s, &admin, &nowhere, json!({"sku": "X", "name": "x", "price": 1.0})).await.status(), 404);

    // Only the two good sales changed stock, and the server still serves.
    assert_eq!(stock(&s, &admin, &st, "PAN-1").await, 10 - 1 - 2);
    let bad_status = s.http.get(s.url("/api/v1/alerts?status=everything")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(bad_status, 400).await, "invalid_query");

    // The inventory report: what was applied per hour, what is short now, what was refused per store.
    let report = s.get_json("/api/v1/reports/inventory", &viewer).await;
    let hours = report["transactionsPerHour"].as_array().unwrap();
    let applied: u64 = hours.iter().map(|h| h["total"].as_u64().unwrap()).sum();
    assert_eq!(applied, 3, "the purchase and two sales: {report}");
    let sales: u64 = hours.iter().filter_map(|h| h["byType"]["SALE"].as_u64()).sum();
    assert_eq!(sales, 2);
    let low: Vec<&str> = report["lowStock"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap()).collect();
    assert_eq!(low, vec!["PAN-1"], "7 left of a threshold of 10");
    assert_eq!(report["negativeStock"].as_array().unwrap().len(), 0);
    let mine = report["errorsPerStore"].as_array().unwrap().iter().find(|e| e["storeId"] == st.as_str()).unwrap().clone();
    // 3 invalid quantities, 1 short, 1 bad transfer, 1 unknown product, 1 reused id (the forbidden and malformed never reached a store).
    assert_eq!(mine["errors"], 7, "{mine}");
    assert_eq!(mine["byCode"]["invalid_quantity"], 3);
    assert_eq!(mine["byCode"]["insufficient_stock"], 1);
    let refused: u64 = hours.iter().map(|h| h["refused"].as_u64().unwrap()).sum();
    assert_eq!(refused, 7, "a store that does not exist leaves no record");
    assert_eq!(s.http.get(s.url("/api/v1/reports/inventory")).bearer_auth(&agent).send().await.unwrap().status(), 403);
    let bad = s.http.get(s.url("/api/v1/reports/inventory?from=yesterday")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(bad, 400).await, "invalid_query");
}

#[tokio::test]
async fn retention_removes_resolved_alerts_past_their_age_and_leaves_open_ones() {
    // Every resolved alert is past an age of 0 days.
    let s = TestServer::start_with(&[("UTALK_RETENTION__INVENTORY_DAYS", "0")]).await;
    let admin = s.login(ADMIN).await;
    let loose = store(&s, &admin, true).await;
    product(&s, &admin, &loose, "CAFE-500", 0).await;
    let txn = |kind: &str, qty: i64| json!({"transactionId": uuid::Uuid::new_v4(), "storeId": loose, "sku": "CAFE-500", "type": kind, "quantity": qty});
    // Below zero, then back to 5: the negative alert resolves, the low one (threshold 10) stays open.
    assert_eq!(post(&s, &admin, "/api/v1/inventory/transactions", txn("SALE", 5)).await.status(), 201);
    assert_eq!(post(&s, &admin, "/api/v1/inventory/transactions", txn("PURCHASE", 10)).await.status(), 201);
    let resolved = s.get_json("/api/v1/alerts?status=resolved", &admin).await["items"].as_array().unwrap().len();
    assert_eq!(resolved, 1, "the negative alert resolved itself");

    let r = s.http.post(s.url("/api/v1/admin/jobs/retention/run")).bearer_auth(&admin).send().await.unwrap();
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["figures"]["resolvedAlertsRemoved"], 1.0, "{run}");
    assert!(s.get_json("/api/v1/alerts?status=resolved", &admin).await["items"].as_array().unwrap().is_empty());
    let open = s.get_json("/api/v1/alerts?status=open", &admin).await;
    let kinds: Vec<&str> = open["items"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["low_stock"], "an open alert is kept whatever its age");
}
