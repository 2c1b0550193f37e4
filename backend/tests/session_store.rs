//! The PostgreSQL session store against a real database.

use std::collections::HashMap;

use backend::sessions::PgSessionStore;
use backend::testing::fresh_pool;
use time::{Duration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};

fn record(expires_in: Duration) -> Record {
    let mut data = HashMap::new();
    data.insert(
        "user_id".to_string(),
        serde_json::json!("0190f1c2-7a3b-7c4d-8e5f-0123456789ab"),
    );
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + expires_in,
    }
}

#[tokio::test]
async fn create_load_save_delete() {
    let store = PgSessionStore::new(fresh_pool().await);
    let mut session = record(Duration::minutes(30));

    store.create(&mut session).await.unwrap();
    let loaded = store
        .load(&session.id)
        .await
        .unwrap()
        .expect("session was stored");
    assert_eq!(loaded.data, session.data);
    assert_eq!(
        loaded.expiry_date.unix_timestamp(),
        session.expiry_date.unix_timestamp()
    );

    session
        .data
        .insert("theme".into(), serde_json::json!("dark"));
    store.save(&session).await.unwrap();
    let reloaded = store.load(&session.id).await.unwrap().unwrap();
    assert_eq!(reloaded.data["theme"], "dark");

    store.delete(&session.id).await.unwrap();
    assert!(store.load(&session.id).await.unwrap().is_none());
}

#[tokio::test]
async fn expired_session_is_not_loaded() {
    let store = PgSessionStore::new(fresh_pool().await);
    let mut session = record(Duration::seconds(-1));
    store.create(&mut session).await.unwrap();
    assert!(store.load(&session.id).await.unwrap().is_none());
}

#[tokio::test]
async fn delete_expired_keeps_live_sessions() {
    let pool = fresh_pool().await;
    let store = PgSessionStore::new(pool.clone());
    let mut live = record(Duration::minutes(30));
    let mut dead = record(Duration::seconds(-5));
    store.create(&mut live).await.unwrap();
    store.create(&mut dead).await.unwrap();

    store.delete_expired().await.unwrap();

    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![live.id.to_string()]);
}

#[tokio::test]
async fn create_never_overwrites_an_existing_id() {
    let store = PgSessionStore::new(fresh_pool().await);
    let mut first = record(Duration::minutes(30));
    store.create(&mut first).await.unwrap();

    let mut second = record(Duration::minutes(30));
    second.id = first.id;
    second
        .data
        .insert("intruder".into(), serde_json::json!(true));
    store.create(&mut second).await.unwrap();

    assert_ne!(second.id, first.id, "a colliding id must be replaced");
    let original = store.load(&first.id).await.unwrap().unwrap();
    assert!(!original.data.contains_key("intruder"));
}
