//! Customers as records: a WhatsApp number, a widget visitor's email and an
//! integrator's external id resolve to one contact; contacts are changed
//! (their conversations follow), kept unique, merged and audited.

use crate::helpers::*;
use serde_json::{json, Value};

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> reqwest::Response {
    s.http.post(s.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn patch(s: &TestServer, token: &str, path: &str, body: Value) -> reqwest::Response {
    s.http.patch(s.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn open(s: &TestServer, token: &str, channel: &str, customer: Value) -> Value {
    let r = post(s, token, "/api/v1/conversations", json!({"channel": channel, "customer": customer})).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_number_an_email_and_an_external_id_each_resolve_to_one_contact_and_merges_move_conversations() {
    let mut s = TestServer::start().await;
    let agent = s.login(AGENT).await;

    // Two WhatsApp conversations from one number: one contact, made with the first.
    let wa1 = open(&s, &agent, "whatsapp", json!({"phone": "+5215550101", "name": "Ana"})).await;
    let wa2 = open(&s, &agent, "whatsapp", json!({"phone": "+5215550101"})).await;
    assert_ne!(wa1["id"], wa2["id"]);
    let ana = wa1["contactId"].as_str().expect("linked to a contact").to_string();
    assert_eq!(wa2["contactId"], ana.as_str());
    assert_eq!(wa2["customer"]["name"], "Ana", "the customer's fields come from the contact: {wa2}");

    // The agent learns her email; her conversations take it.
    let r =
        patch(&s, &agent, &format!("/api/v1/contacts/{ana}"), json!({"email": "Ana@Example.com", "attributes": {"plan": "gold"}})).await;
    assert_eq!(r.status(), 200);
    let contact: Value = r.json().await.unwrap();
    assert_eq!(contact["email"], "ana@example.com");
    for c in [&wa1, &wa2] {
        let now = s.get_json(&format!("/api/v1/conversations/{}", c["id"].as_str().unwrap()), &agent).await;
        assert_eq!(now["customer"]["email"], "ana@example.com", "{now}");
        assert_eq!(now["customer"]["phone"], "+5215550101");
    }

    // A widget visitor who gives that email is the same contact.
    let w: Value = s
        .http
        .post(s.url("/api/v1/widget/sessions"))
        .json(&json!({"name": "Ana P.", "email": "ANA@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let web = s.get_json(&format!("/api/v1/conversations/{}", w["conversationId"].as_str().unwrap()), &agent).await;
    assert_eq!(web["contactId"], ana.as_str(), "{web}");
    assert_eq!(web["customer"]["name"], "Ana");
    let listed = s.get_json(&format!("/api/v1/contacts/{ana}/conversations"), &agent).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "{listed}");

    // An integrator's customer by external id: one contact for both conversations.
    let api1 = open(&s, &agent, "api", json!({"externalId": "crm-9", "name": "Luis"})).await;
    let api2 = open(&s, &agent, "api", json!({"externalId": "crm-9"})).await;
    let luis = api1["contactId"].as_str().unwrap().to_string();
    assert_eq!(api2["contactId"], luis.as_str());
    assert_ne!(luis, ana);

    // Unique phone, email and external id: a second contact cannot take them.
    let r = post(&s, &agent, "/api/v1/contacts", json!({"phone": "+52 1 555 0101"})).await;
    assert_eq!(TestServer::error_code(r, 409).await, "contact_exists");
    let r = patch(&s, &agent, &format!("/api/v1/contacts/{luis}"), json!({"email": "ana@example.com"})).await;
    assert_eq!(TestServer::error_code(r, 409).await, "contact_exists");
    assert_eq!(s.get_json(&format!("/api/v1/contacts/{luis}"), &agent).await["email"], Value::Null, "nothing changed");

    // Bad input is refused and changes nothing.
    for (body, code) in [
        (json!({"phone": "call me"}), "invalid_phone"),
        (json!({"email": "not an address"}), "invalid_email"),
        (json!({"name": "x".repeat(201)}), "validation_failed"),
        (
            json!({"attributes": (0..51).map(|i| (format!("k{i}"), "v".to_string())).collect::<std::collections::BTreeMap<_, _>>()}),
            "validation_failed",
        ),
        (json!({"nickname": "x"}), "validation_failed"),
    ] {
        let r = post(&s, &agent, "/api/v1/contacts", body.clone()).await;
        assert_eq!(TestServer::error_code(r, 422).await, code, "{body}");
    }
    let r = post(&s, &agent, &format!("/api/v1/contacts/{ana}/merge"), json!({"contactId": ana})).await;
    assert_eq!(TestServer::error_code(r, 422).await, "validation_failed");
    let r = s.http.get(s.url(&format!("/api/v1/contacts/{}", uuid::Uuid::now_v7()))).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    let r = s.http.get(s.url("/api/v1/contacts")).bearer_auth(w["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 403, "a widget reads no contacts");

    // Merge Luis into Ana: his conversations follow; Ana takes his external id; he is gone.
    let r = post(&s, &agent, &format!("/api/v1/contacts/{ana}/merge"), json!({"contactId": luis})).await;
    assert_eq!(r.status(), 200);
    let merged: Value = r.json().await.unwrap();
    assert_eq!(merged["externalId"], "crm-9");
    assert_eq!(merged["attributes"]["plan"], "gold");
    for c in [&api1, &api2] {
        let now = s.get_json(&format!("/api/v1/conversations/{}", c["id"].as_str().unwrap()), &agent).await;
        assert_eq!(now["contactId"], ana.as_str(), "{now}");
        assert_eq!(now["customer"]["email"], "ana@example.com");
    }
    let r = s.http.get(s.url(&format!("/api/v1/contacts/{luis}"))).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");
    assert_eq!(s.get_json(&format!("/api/v1/contacts/{ana}/conversations"), &agent).await["items"].as_array().unwrap().len(), 5);
    let api3 = open(&s, &agent, "api", json!({"externalId": "crm-9"})).await;
    assert_eq!(api3["contactId"], ana.as_str(), "his external id now names the survivor");

    // Kept across a restart; every change audited.
    let data = s.data_dir();
    s.kill();
    let audit = exported_audit(&data);
    assert!(audit.contains("contact.update") && audit.contains("contact.merge"), "{audit}");
    let again = TestServer::start_on(&data, &[]).await;
    let admin = again.login(ADMIN).await;
    let all = again.get_json("/api/v1/contacts?limit=200", &admin).await;
    let ids: Vec<&str> = all["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&ana.as_str()) && !ids.contains(&luis.as_str()), "{all}");
}

#[tokio::test]
async fn an_admin_exports_everything_held_about_a_contact_and_it_is_audited() {
    let mut s = TestServer::start().await;
    let admin = s.login(ADMIN).await;
    let agent = s.login(AGENT).await;
    let first = open(&s, &agent, "api", json!({"externalId": "crm-77", "name": "Marta"})).await;
    let second = open(&s, &agent, "api", json!({"externalId": "crm-77"})).await;
    let other = open(&s, &agent, "api", json!({"externalId": "crm-78", "name": "Someone Else"})).await;
    let contact = first["contactId"].as_str().unwrap().to_string();
    for (c, text) in [(&first, "primer mensaje de Marta"), (&second, "segundo mensaje de Marta"), (&other, "not Marta's")] {
        s.send_text(&agent, c["id"].as_str().unwrap(), text).await;
    }
    let r = post(
        &s,
        &agent,
        &format!("/api/v1/conversations/{}/messages", first["id"].as_str().unwrap()),
        json!({"messageId": uuid::Uuid::new_v4(), "text": "nota sobre Marta", "private": true}),
    )
    .await;
    assert_eq!(r.status(), 201);

    let r = s.http.get(s.url(&format!("/api/v1/contacts/{contact}/export"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains(&format!("contact-{contact}.json")));
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["contact"]["externalId"], "crm-77");
    let convs = e["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2, "{e}");
    let texts: Vec<&str> = convs.iter().flat_map(|c| c["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str())).collect();
    assert_eq!(texts, ["primer mensaje de Marta", "nota sobre Marta", "segundo mensaje de Marta"]);
    assert!(!e.to_string().contains("not Marta's"), "nothing of another contact");

    // Admins only; an unknown contact is 404.
    let r = s.http.get(s.url(&format!("/api/v1/contacts/{contact}/export"))).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s.http.get(s.url(&format!("/api/v1/contacts/{}/export", uuid::Uuid::now_v7()))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(TestServer::error_code(r, 404).await, "not_found");

    let data = s.data_dir();
    s.kill();
    let audit = exported_audit(&data);
    assert_eq!(audit.lines().filter(|l| l.contains("contact.export") && l.contains(&contact)).count(), 1, "{audit}");
}

#[tokio::test]
async fn conversations_stored_before_contacts_are_linked_by_the_backfill_job_once() {
    use utalk_storage::model::{conversation, Channel, Conversation, Customer};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, ADMIN.0, "admin", ADMIN.1);
    // Written as a release before contacts wrote them: no contact.
    let old = |phone: &str, name: Option<&str>| {
        let customer = Customer { name: name.map(str::to_string), phone: Some(phone.to_string()), email: None, external_id: None };
        Conversation::new(Channel::Whatsapp, customer, None)
    };
    let convs = [old("+5215550111", Some("Old Ana")), old("+5215550111", None), old("+5215550222", None)];
    // A customer who gave nothing (or was erased): nothing to link.
    let anonymous = Conversation::new(Channel::Web, Customer::default(), None);
    {
        let db = utalk_storage::Db::open(&data, &utalk_storage::DbOptions::default()).unwrap();
        let batches: Vec<_> = convs.iter().chain([&anonymous]).map(|c| conversation::put_batch(None, c).unwrap()).collect();
        db.write_group(batches.iter(), true).unwrap();
        assert!(convs.iter().all(|c| c.contact_id.is_none()));
    }
    // Run by hand below, never by the schedule meanwhile.
    let s = TestServer::start_on(&data, &[("UTALK_JOBS__DATA_MIGRATIONS", "0 0 0 1 1 *")]).await;
    let admin = s.login(ADMIN).await;
    let migrations = s.get_json("/api/v1/admin/migrations", &admin).await;
    assert_eq!(migrations["schemaVersion"], utalk_storage::SCHEMA_VERSION);
    assert_eq!(migrations["items"][0]["name"], "contact_links");
    assert_eq!(migrations["items"][0]["state"], "pending", "{migrations}");
    let get = |id: uuid::Uuid| {
        let (s, admin) = (&s, admin.clone());
        async move { s.get_json(&format!("/api/v1/conversations/{id}"), &admin).await }
    };
    assert!(get(convs[0].id).await["contactId"].is_null());

    let run = || {
        let (s, admin) = (&s, admin.clone());
        async move {
            let r = s.http.post(s.url("/api/v1/admin/jobs/data_migrations/run")).bearer_auth(&admin).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = run().await;
    assert_eq!(first["outcome"], "ok", "{first}");
    assert_eq!(first["figures"]["migrated"], 4.0, "every conversation walked: {first}");
    assert_eq!(first["figures"]["pending"], 0.0, "{first}");
    let migrations = s.get_json("/api/v1/admin/migrations", &admin).await;
    let links = &migrations["items"][0];
    assert_eq!(
        (links["state"].as_str(), links["processed"].as_u64(), links["steps"].as_u64()),
        (Some("done"), Some(4), Some(1)),
        "{links}"
    );
    assert!(links["finishedAt"].is_string() && links["lastError"].is_null(), "{links}");
    let (a, b, c) = (get(convs[0].id).await, get(convs[1].id).await, get(convs[2].id).await);
    let ana = a["contactId"].as_str().expect("linked").to_string();
    assert_eq!(b["contactId"], ana.as_str(), "one number, one contact");
    assert_eq!(b["customer"]["name"], "Old Ana", "the customer's fields come from the contact");
    assert!(c["contactId"].as_str().is_some_and(|x| x != ana));
    let conversations = s.get_json(&format!("/api/v1/contacts/{ana}/conversations"), &admin).await;
    assert_eq!(conversations["items"].as_array().unwrap().len(), 2);
    assert!(get(anonymous.id).await["contactId"].is_null(), "no empty contact is made for a customer who gave nothing");

    // Done once: a later run reads its progress and walks nothing.
    let again = run().await;
    assert_eq!(again["figures"]["migrated"], 0.0, "{again}");
    let migrations = s.get_json("/api/v1/admin/migrations", &admin).await;
    assert_eq!(migrations["items"][0]["processed"], 4, "{migrations}");
}
