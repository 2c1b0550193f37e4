//! Change sets against real PostgreSQL and real workers: tiers, decisions, apply, rollback.

mod common;

use std::time::Duration;

use backend::accounts::{self, Email, Principal, Role};
use backend::changes::store::{self, Caller, Decision, RollbackOutcome};
use backend::changes::{Action, Operation};
use backend::facility::{self, Kind};
use backend::http::{ApiError, ClientMeta, CorrelationId};
use backend::jobs::JobSettings;
use common::TestApp;
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// The three users of a test tenant, plus a second approver.
struct People {
    tenant: Uuid,
    manager: Caller,
    approver: Caller,
    second_approver: Caller,
}

async fn caller(pool: &PgPool, email: &str) -> Caller {
    let id = accounts::user_id_by_email(pool, &Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let principal: Principal = accounts::load_principal(pool, id).await.unwrap().unwrap();
    Caller::new(
        &principal,
        &ClientMeta {
            ip: "127.0.0.1".to_string(),
            user_agent: "changes-test".to_string(),
        },
        &CorrelationId(format!("corr-{}", Uuid::now_v7())),
    )
}

async fn people(app: &TestApp, slug: &str) -> People {
    app.tenant(slug).await;
    let tenant = accounts::tenant_by_slug(&app.pool, slug)
        .await
        .unwrap()
        .unwrap();
    let email = Email::parse(&format!("approver2@{slug}.test")).unwrap();
    accounts::create_user(
        &app.pool,
        tenant.scope(),
        &email,
        &[Role::Approver],
        "second-approver-password",
    )
    .await
    .unwrap();
    People {
        tenant: tenant.id.0,
        manager: caller(&app.pool, &format!("manager@{slug}.test")).await,
        approver: caller(&app.pool, &format!("approver@{slug}.test")).await,
        second_approver: caller(&app.pool, &format!("approver2@{slug}.test")).await,
    }
}

fn op(kind: Kind, action: Action, key: Value, fields: Value) -> Operation {
    Operation {
        kind,
        action,
        key: key.as_object().cloned().unwrap(),
        fields: fields.as_object().cloned().unwrap_or_else(Map::new),
    }
}

fn site(code: &str) -> Operation {
    op(
        Kind::Site,
        Action::Create,
        json!({"code": code}),
        json!({
            "name": "North warehouse", "kind": "warehouse", "timezone": "Europe/London",
            "address": "1 Dock Road", "max_users": 180, "open_24x7": true, "weekly_hours": {},
            "security_level": "high"
        }),
    )
}

fn zone(site: &str, code: &str) -> Operation {
    op(
        Kind::Zone,
        Action::Create,
        json!({"site_code": site, "code": code}),
        json!({"name": format!("Zone {code}"), "kind": "loading_dock", "importance": 4, "risk_level": "medium"}),
    )
}

fn start_workers(pool: &PgPool) -> tokio::task::JoinHandle<()> {
    let pool = pool.clone();
    let settings = JobSettings {
        poll_interval: Duration::from_millis(100),
        upkeep_interval: Duration::from_secs(3600),
        ..JobSettings::default()
    };
    tokio::spawn(async move {
        server::workers::run(pool, settings, std::future::pending())
            .await
            .unwrap()
    })
}

async fn wait_for_status(pool: &PgPool, tenant: Uuid, id: Uuid, status: &str) {
    for _ in 0..200 {
        let change_set = store::get(pool, tenant, id).await.unwrap();
        if change_set.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let change_set = store::get(pool, tenant, id).await.unwrap();
    panic!(
        "change set {id} is {} instead of {status}",
        change_set.status
    );
}

#[tokio::test]
async fn invalid_operations_are_listed() {
    let app = TestApp::spawn().await;
    let people = people(&app, "invalid").await;
    let operations = vec![
        zone("NOPE", "Z1"),
        op(
            Kind::Site,
            Action::Create,
            json!({"code": "WH-01"}),
            json!({"name": "x", "kind": "castle", "timezone": "UTC", "address": null,
                   "max_users": 0, "open_24x7": true, "weekly_hours": {}, "security_level": "high"}),
        ),
        op(
            Kind::Zone,
            Action::Update,
            json!({"site_code": "WH-01", "code": "Z9"}),
            json!({"importance": 3}),
        ),
    ];
    let error = store::create(&app.pool, &people.manager, "Bad", operations, None, None)
        .await
        .unwrap_err();
    let ApiError::Unprocessable { message, .. } = error else {
        panic!("expected 422, got {error:?}");
    };
    assert!(
        message.contains("operation 1: site NOPE does not exist"),
        "{message}"
    );
    assert!(
        message.contains("operation 2: kind 'castle' is not allowed"),
        "{message}"
    );
    assert!(
        message.contains("operation 3: zone WH-01/Z9 does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn tiers_and_decisions() {
    let app = TestApp::spawn().await;
    let people = people(&app, "tiers").await;

    // Two creates: risk 0.05, the requester applies alone.
    let small = store::create(
        &app.pool,
        &people.manager,
        "Site and dock",
        vec![site("WH-01"), zone("WH-01", "DOCK-1")],
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(small.tier.as_str(), "self");
    assert_eq!(small.preview.items[1].before, None);
    assert_eq!(
        small.preview.items[1].after.as_ref().unwrap()["importance"],
        4
    );

    // The requester cannot approve; an approver approving twice at once counts once.
    let workers = start_workers(&app.pool);
    store::request_apply(&app.pool, &people.manager, small.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, small.id, "applied").await;

    // Eleven operations: two approvals needed.
    let mut many = Vec::new();
    for index in 0..11 {
        many.push(zone("WH-01", &format!("Z{index}")));
    }
    let large = store::create(&app.pool, &people.manager, "Eleven zones", many, None, None)
        .await
        .unwrap();
    assert_eq!(large.tier.as_str(), "two_approvers");
    assert_eq!(large.approvals_missing, 2);

    let own = store::decide(
        &app.pool,
        &people.manager,
        large.id,
        Decision::Approve,
        None,
    )
    .await;
    assert!(matches!(own, Err(ApiError::Forbidden(_))), "{own:?}");

    let (first, second) = tokio::join!(
        store::decide(
            &app.pool,
            &people.approver,
            large.id,
            Decision::Approve,
            Some("ok")
        ),
        store::decide(
            &app.pool,
            &people.approver,
            large.id,
            Decision::Approve,
            Some("ok again")
        ),
    );
    first.unwrap();
    second.unwrap();
    let after_one = store::get(&app.pool, people.tenant, large.id)
        .await
        .unwrap();
    assert_eq!(after_one.approvals, 1, "one person counts once");
    assert_eq!(after_one.status, "pending");
    let early = store::request_apply(&app.pool, &people.manager, large.id).await;
    assert!(matches!(early, Err(ApiError::Conflict { .. })), "{early:?}");

    // Editing resets approvals.
    let mut edited = Vec::new();
    for index in 0..12 {
        edited.push(zone("WH-01", &format!("Z{index}")));
    }
    let edited = store::edit(&app.pool, &people.manager, large.id, edited)
        .await
        .unwrap();
    assert_eq!(edited.revision, 2);
    assert_eq!(edited.approvals, 0, "approvals reset on edit");

    store::decide(
        &app.pool,
        &people.approver,
        large.id,
        Decision::Approve,
        None,
    )
    .await
    .unwrap();
    let approved = store::decide(
        &app.pool,
        &people.second_approver,
        large.id,
        Decision::Approve,
        None,
    )
    .await
    .unwrap();
    assert_eq!(approved.status, "approved");
    store::request_apply(&app.pool, &people.manager, large.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, large.id, "applied").await;
    workers.abort();

    // A rejection ends the request.
    let rejected = store::create(
        &app.pool,
        &people.manager,
        "Remove dock",
        vec![op(
            Kind::Zone,
            Action::Delete,
            json!({"site_code": "WH-01", "code": "DOCK-1"}),
            json!({}),
        )],
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(rejected.tier.as_str(), "one_approver");
    let rejected = store::decide(
        &app.pool,
        &people.approver,
        rejected.id,
        Decision::Reject,
        Some("keep it"),
    )
    .await
    .unwrap();
    assert_eq!(rejected.status, "rejected");
    let late = store::decide(
        &app.pool,
        &people.second_approver,
        rejected.id,
        Decision::Approve,
        None,
    )
    .await;
    assert!(matches!(late, Err(ApiError::Conflict { .. })), "{late:?}");

    // Decisions carry client details and the risk score.
    let recorded: (String, String, f64) = sqlx::query_as(
        "SELECT ip, user_agent, risk_score::float8 FROM change_decisions \
          WHERE change_set_id = $1 AND decision = 'reject'",
    )
    .bind(rejected.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        ("127.0.0.1".to_string(), "changes-test".to_string(), 0.3)
    );
}

#[tokio::test]
async fn expired_request_cannot_be_applied() {
    let app = TestApp::spawn().await;
    let people = people(&app, "expiry").await;
    let change_set = store::create(
        &app.pool,
        &people.manager,
        "Site",
        vec![site("WH-02")],
        None,
        None,
    )
    .await
    .unwrap();
    sqlx::query("UPDATE change_sets SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(change_set.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let apply = store::request_apply(&app.pool, &people.manager, change_set.id).await;
    assert!(matches!(apply, Err(ApiError::Conflict { .. })), "{apply:?}");
    let status = store::get(&app.pool, people.tenant, change_set.id)
        .await
        .unwrap()
        .status;
    assert_eq!(status, "expired");
}

#[tokio::test]
async fn apply_then_rollback_restores_everything() {
    let app = TestApp::spawn().await;
    let people = people(&app, "rollback").await;
    let workers = start_workers(&app.pool);

    // A starting configuration.
    let base = store::create(
        &app.pool,
        &people.manager,
        "Base",
        vec![
            site("WH-01"),
            zone("WH-01", "DOCK-1"),
            zone("WH-01", "GATE-1"),
        ],
        None,
        None,
    )
    .await
    .unwrap();
    store::request_apply(&app.pool, &people.manager, base.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, base.id, "applied").await;
    let before = facility::snapshot(&app.pool, people.tenant).await.unwrap();

    // Creates, updates and deletes of several kinds.
    let change = store::create(
        &app.pool,
        &people.manager,
        "Rework",
        vec![
            zone("WH-01", "YARD"),
            op(Kind::Zone, Action::Update, json!({"site_code": "WH-01", "code": "DOCK-1"}),
               json!({"importance": 2, "risk_level": "low"})),
            op(Kind::Zone, Action::Delete, json!({"site_code": "WH-01", "code": "GATE-1"}), json!({})),
            op(Kind::SecuritySettings, Action::Create, json!({"site_code": "WH-01"}),
               json!({"gps_enabled": true, "sleeping_guard_detection": true, "permissible_distance_m": 50})),
            op(Kind::Checkpoint, Action::Create, json!({"site_code": "WH-01", "code": "CP-1"}),
               json!({"zone_code": "YARD", "verification": "nfc", "frequency_minutes": 60,
                      "questions": ["Fence intact?"], "severity": "high"})),
            op(Kind::Shift, Action::Create, json!({"site_code": "WH-01", "name": "Night"}),
               json!({"start_time": "22:00", "end_time": "06:00", "weekdays": ["mon", "tue"],
                      "people_count": 3, "role": "guard"})),
            op(Kind::Site, Action::Update, json!({"code": "WH-01"}), json!({"max_users": 200})),
        ],
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        change.tier.as_str(),
        "one_approver",
        "security settings and 7 operations"
    );
    store::decide(
        &app.pool,
        &people.approver,
        change.id,
        Decision::Approve,
        None,
    )
    .await
    .unwrap();
    store::request_apply(&app.pool, &people.manager, change.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, change.id, "applied").await;
    let applied = facility::snapshot(&app.pool, people.tenant).await.unwrap();
    assert_ne!(applied, before);
    assert_eq!(applied["shift"][0]["weekdays"], json!(["mon", "tue"]));

    // A delivered-twice apply changes nothing more.
    let again = backend::changes::apply::apply(&app.pool, people.tenant, change.id, "again")
        .await
        .unwrap();
    assert_eq!(again, backend::changes::apply::ApplyOutcome::NothingToDo);
    let records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM change_records WHERE change_set_id = $1")
            .bind(change.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(records, 7);

    let RollbackOutcome::Created {
        change_set: rollback,
    } = store::rollback(&app.pool, &people.manager, change.id)
        .await
        .unwrap()
    else {
        panic!("rollback had conflicts");
    };
    assert_eq!(rollback.operations.len(), 7);
    assert_eq!(rollback.operations[0].kind, Kind::Site, "reverse order");
    let second = store::rollback(&app.pool, &people.manager, change.id).await;
    assert!(
        matches!(second, Err(ApiError::Conflict { .. })),
        "{second:?}"
    );
    let original = store::get(&app.pool, people.tenant, change.id)
        .await
        .unwrap();
    assert_eq!(
        original.rolled_back_by,
        Some(rollback.id),
        "the original names its rollback"
    );

    if rollback.tier.approvals_needed() > 0 {
        store::decide(
            &app.pool,
            &people.approver,
            rollback.id,
            Decision::Approve,
            None,
        )
        .await
        .unwrap();
    }
    if rollback.tier.approvals_needed() > 1 {
        store::decide(
            &app.pool,
            &people.second_approver,
            rollback.id,
            Decision::Approve,
            None,
        )
        .await
        .unwrap();
    }
    store::request_apply(&app.pool, &people.manager, rollback.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, rollback.id, "applied").await;
    workers.abort();

    let restored = facility::snapshot(&app.pool, people.tenant).await.unwrap();
    assert_eq!(restored, before, "every row restored exactly");
    let original = store::get(&app.pool, people.tenant, change.id)
        .await
        .unwrap();
    assert_eq!(original.status, "rolled_back");
    let third = store::rollback(&app.pool, &people.manager, change.id).await;
    assert!(
        matches!(third, Err(ApiError::Conflict { .. })),
        "a rolled-back set stays rolled back"
    );
}

#[tokio::test]
async fn conflicting_edit_blocks_rollback() {
    let app = TestApp::spawn().await;
    let people = people(&app, "conflict").await;
    let workers = start_workers(&app.pool);
    let change = store::create(
        &app.pool,
        &people.manager,
        "Site and zone",
        vec![site("WH-01"), zone("WH-01", "DOCK-1")],
        None,
        None,
    )
    .await
    .unwrap();
    store::request_apply(&app.pool, &people.manager, change.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, change.id, "applied").await;

    let edit = store::create(
        &app.pool,
        &people.manager,
        "Rename dock",
        vec![op(
            Kind::Zone,
            Action::Update,
            json!({"site_code": "WH-01", "code": "DOCK-1"}),
            json!({"name": "Dock one"}),
        )],
        None,
        None,
    )
    .await
    .unwrap();
    store::request_apply(&app.pool, &people.manager, edit.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, edit.id, "applied").await;
    workers.abort();
    let before = facility::snapshot(&app.pool, people.tenant).await.unwrap();

    let outcome = store::rollback(&app.pool, &people.manager, change.id)
        .await
        .unwrap();
    let RollbackOutcome::Conflicts { conflicts } = outcome else {
        panic!("expected conflicts, got {outcome:?}");
    };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].kind, "zone");
    assert_eq!(
        conflicts[0].key,
        json!({"site_code": "WH-01", "code": "DOCK-1"})
    );
    assert_eq!(conflicts[0].current.as_ref().unwrap()["name"], "Dock one");
    assert_eq!(
        conflicts[0].expected.as_ref().unwrap()["name"],
        "Zone DOCK-1"
    );
    let after = facility::snapshot(&app.pool, people.tenant).await.unwrap();
    assert_eq!(after, before, "nothing changed");
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM change_sets WHERE rollback_of IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn change_set_routes() {
    let app = TestApp::spawn().await;
    let people = people(&app, "routes").await;
    let manager = app.token("manager@routes.test").await;
    let approver = app.token("approver@routes.test").await;
    let admin = app.token("admin@routes.test").await;

    let body = json!({
        "title": "North site",
        "operations": [site("WH-01"), zone("WH-01", "DOCK-1")],
    });
    let response = app.post_as(&approver, "/api/v1/change-sets", &body).await;
    assert_eq!(
        response.status(),
        reqwest::StatusCode::FORBIDDEN,
        "managers create"
    );
    let response = app.post_as(&manager, "/api/v1/change-sets", &body).await;
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["tier"], "self");
    assert_eq!(
        created["preview"]["assessment"]["explanation"],
        "no approval needed: risk 0.05 is under 0.3"
    );
    let id = created["id"].as_str().unwrap().to_string();

    let bad = json!({"title": "Bad", "operations": [zone("NOPE", "Z1")]});
    let response = app.post_as(&manager, "/api/v1/change-sets", &bad).await;
    assert_eq!(response.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("site NOPE does not exist"),
        "{error}"
    );

    let response = app
        .post_as(
            &approver,
            &format!("/api/v1/change-sets/{id}/decisions"),
            &json!({"decision": "maybe"}),
        )
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);

    let workers = start_workers(&app.pool);
    let response = app
        .post_as(
            &manager,
            &format!("/api/v1/change-sets/{id}/apply"),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    wait_for_status(&app.pool, people.tenant, id.parse().unwrap(), "applied").await;
    workers.abort();

    let response = app.get_as(&admin, "/api/v1/sites/WH-01").await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let config: Value = response.json().await.unwrap();
    assert_eq!(config["site"]["max_users"], 180);
    assert_eq!(config["zones"][0]["code"], "DOCK-1");
    let response = app.get_as(&admin, "/api/v1/sites/NOPE").await;
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);

    let list: Value = app
        .get_as(&manager, "/api/v1/change-sets?status=applied&mine=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let response = app
        .get_as(&manager, "/api/v1/change-sets?status=done")
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);

    // Someone edits the dock after the apply: the rollback lists the conflict.
    let rename = json!({"title": "Rename", "operations": [
        op(Kind::Zone, Action::Update, json!({"site_code": "WH-01", "code": "DOCK-1"}), json!({"name": "Dock one"}))
    ]});
    let renamed: Value = app
        .post_as(&manager, "/api/v1/change-sets", &rename)
        .await
        .json()
        .await
        .unwrap();
    let workers = start_workers(&app.pool);
    let rename_id = renamed["id"].as_str().unwrap();
    app.post_as(
        &manager,
        &format!("/api/v1/change-sets/{rename_id}/apply"),
        &json!({}),
    )
    .await;
    wait_for_status(
        &app.pool,
        people.tenant,
        rename_id.parse().unwrap(),
        "applied",
    )
    .await;
    workers.abort();
    let response = app
        .post_as(
            &manager,
            &format!("/api/v1/change-sets/{id}/rollback"),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::CONFLICT);
    let conflicts: Value = response.json().await.unwrap();
    assert_eq!(conflicts["conflicts"][0]["kind"], "zone");
    assert!(conflicts["error"]
        .as_str()
        .unwrap()
        .contains("nothing was rolled back"));

    let (_, actions) = app.audit_trail(&admin).await;
    assert!(
        actions.iter().any(|action| action == "change_set.create"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|action| action == "change_set.applied"),
        "{actions:?}"
    );
    let verification: Value = app
        .get_as(&admin, "/api/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verification["intact"], true);
}

#[tokio::test]
async fn apply_delivered_twice_applies_once() {
    let app = TestApp::spawn().await;
    let people = people(&app, "twice").await;
    let change = store::create(
        &app.pool,
        &people.manager,
        "Site and zone",
        vec![site("WH-01"), zone("WH-01", "DOCK-1")],
        None,
        None,
    )
    .await
    .unwrap();
    let job_id = store::request_apply(&app.pool, &people.manager, change.id)
        .await
        .unwrap();

    // The delivery apalis would hand out, handed to two runners at once.
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT job FROM apalis.jobs WHERE convert_from(job, 'UTF8')::jsonb->>'job_id' = $1",
    )
    .bind(job_id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    let settings = JobSettings::default();
    let registry = backend::jobs::registry(&app.pool, &settings).unwrap();
    let runner = backend::jobs::Runner::new(app.pool.clone(), registry, settings.policy.clone());
    let (first, second) = tokio::join!(
        runner.handle(payload.clone(), "task-a"),
        runner.handle(payload.clone(), "task-b"),
    );
    let outcomes = [first.unwrap(), second.unwrap()];
    assert!(
        outcomes.contains(&backend::jobs::runner::DeliveryOutcome::Succeeded),
        "{outcomes:?}"
    );

    let records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM change_records WHERE change_set_id = $1")
            .bind(change.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(records, 2, "each operation recorded once");
    let version: i64 =
        sqlx::query_scalar("SELECT version FROM config_versions WHERE tenant_id = $1")
            .bind(people.tenant)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(version, 1, "the configuration moved one version");
    let status = store::get(&app.pool, people.tenant, change.id)
        .await
        .unwrap()
        .status;
    assert_eq!(status, "applied");
}

#[tokio::test]
async fn apply_of_outdated_set_is_released() {
    let app = TestApp::spawn().await;
    let people = people(&app, "outdated").await;
    let workers = start_workers(&app.pool);
    let base = store::create(
        &app.pool,
        &people.manager,
        "Site",
        vec![site("WH-01")],
        None,
        None,
    )
    .await
    .unwrap();
    store::request_apply(&app.pool, &people.manager, base.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, base.id, "applied").await;

    // Two sets create the same zone; the second to apply no longer fits.
    let first = store::create(
        &app.pool,
        &people.manager,
        "Dock A",
        vec![zone("WH-01", "DOCK-1")],
        None,
        None,
    )
    .await
    .unwrap();
    let second = store::create(
        &app.pool,
        &people.manager,
        "Dock B",
        vec![zone("WH-01", "DOCK-1")],
        None,
        None,
    )
    .await
    .unwrap();
    store::request_apply(&app.pool, &people.manager, first.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, first.id, "applied").await;
    store::request_apply(&app.pool, &people.manager, second.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, second.id, "approved").await;
    workers.abort();

    let (class, critical, chain): (String, bool, Value) = sqlx::query_as(
        "SELECT error_class, critical, error_chain FROM dead_letters WHERE kind = 'change_set.apply'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(class, "permanent");
    assert!(critical, "apply is a critical kind");
    assert!(
        chain[0].as_str().unwrap().contains("already exists"),
        "{chain}"
    );
    let trail = backend::audit::list(
        &app.pool,
        people.tenant,
        Some(&second.id.to_string()),
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(trail[0].action, "change_set.apply_failed");
}

#[tokio::test]
async fn applied_set_completes_its_conversation() {
    let app = TestApp::spawn().await;
    let people = people(&app, "talks").await;
    let conversation = backend::conversations::start(
        &app.pool,
        &people.manager.principal,
        "WH-01",
        backend::conversations::ConversationType::NewSite,
    )
    .await
    .unwrap();
    sqlx::query("UPDATE conversation_sessions SET state = 'awaiting_user_approval' WHERE id = $1")
        .bind(conversation.id.0)
        .execute(&app.pool)
        .await
        .unwrap();

    let change = store::create(
        &app.pool,
        &people.manager,
        "Proposal",
        vec![site("WH-01")],
        None,
        Some(conversation.id.0),
    )
    .await
    .unwrap();
    let workers = start_workers(&app.pool);
    store::request_apply(&app.pool, &people.manager, change.id)
        .await
        .unwrap();
    wait_for_status(&app.pool, people.tenant, change.id, "applied").await;
    workers.abort();

    let state: String = sqlx::query_scalar("SELECT state FROM conversation_sessions WHERE id = $1")
        .bind(conversation.id.0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "completed");
}
