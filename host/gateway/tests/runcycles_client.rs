//! The official Rust client crate `runcycles`, unmodified, against the gateway: reserve,
//! commit, release, extend, balances, decide, events, get and list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use runcycles::models::{
    Action, Amount, BalanceParams, CommitRequest, DecisionRequest, EventCreateRequest, ExtendRequest,
    ListReservationsParams, ReleaseRequest, ReservationCreateRequest, Subject,
};
use runcycles::{CyclesClient, Error};

fn subject(tenant: &str) -> Subject {
    Subject { tenant: Some(tenant.into()), workspace: Some("prod".into()), agent: Some("summarizer".into()), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runcycles_client_drives_the_whole_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::gateway(dir.path()).await;
    let http = common::Http::new(gw.url());
    let key = http.provision("acme").await;
    http.budget(&key, "tenant:acme", "USD_MICROCENTS", 10_000_000, serde_json::json!({})).await;
    http.budget(&key, "tenant:acme/workspace:prod", "USD_MICROCENTS", 1_000_000, serde_json::json!({})).await;

    let client = CyclesClient::builder(key.clone(), gw.url()).tenant("acme").build();

    // reserve -> commit (under the estimate: the rest is released)
    let guard = client
        .reserve(
            ReservationCreateRequest::builder()
                .subject(subject("acme"))
                .action(Action::new("llm.completion", "gpt-4o"))
                .estimate(Amount::usd_microcents(500_000))
                .build(),
        )
        .await
        .expect("reserve");
    assert_eq!(
        guard.affected_scopes(),
        ["tenant:acme", "tenant:acme/workspace:prod", "tenant:acme/workspace:prod/agent:summarizer"]
    );
    let committed = guard.commit(CommitRequest::builder().actual(Amount::usd_microcents(423_000)).build()).await.expect("commit");
    assert_eq!(committed.charged.amount, 423_000);
    assert_eq!(committed.released.as_ref().map(|a| a.amount), Some(77_000));

    // reserve -> extend -> release, through the low-level calls
    let created = client
        .create_reservation(
            &ReservationCreateRequest::builder()
                .subject(subject("acme"))
                .action(Action::new("tool.search", "web"))
                .estimate(Amount::usd_microcents(100_000))
                .ttl_ms(5_000)
                .build(),
        )
        .await
        .expect("create");
    let id = created.reservation_id.clone().expect("an id");
    let before = created.expires_at_ms.expect("expiry");
    let extended = client.extend_reservation(&id, &ExtendRequest::new(10_000)).await.expect("extend");
    assert_eq!(extended.expires_at_ms, before + 10_000);
    let detail = client.get_reservation(&id).await.expect("get");
    assert_eq!(detail.expires_at_ms, before + 10_000);
    let released = client.release_reservation(&id, &ReleaseRequest::new(Some("not needed".into()))).await.expect("release");
    assert_eq!(released.released.amount, 100_000);
    // releasing twice with a new key: the reservation is finalized
    let again = client.release_reservation(&id, &ReleaseRequest::new(None)).await;
    assert!(matches!(again, Err(Error::Api { status: 409, .. })), "{again:?}");

    // balances: only the commit is spent, nothing is held
    let balances = client
        .get_balances(&BalanceParams { tenant: Some("acme".into()), ..Default::default() })
        .await
        .expect("balances");
    assert_eq!(balances.balances.len(), 2);
    for b in &balances.balances {
        assert_eq!(b.spent.as_ref().map(|a| a.amount), Some(423_000), "{b:?}");
        assert_eq!(b.reserved.as_ref().map(|a| a.amount), Some(0), "{b:?}");
    }

    // decide and events
    let decision = client
        .decide(
            &DecisionRequest::builder()
                .subject(subject("acme"))
                .action(Action::new("llm.completion", "gpt-4o"))
                .estimate(Amount::usd_microcents(5_000_000))
                .build(),
        )
        .await
        .expect("decide");
    assert_eq!(format!("{:?}", decision.decision), "Deny", "{decision:?}");
    let event = client
        .create_event(
            &EventCreateRequest::builder()
                .subject(subject("acme"))
                .action(Action::new("llm.completion", "gpt-4o"))
                .actual(Amount::usd_microcents(1_000))
                .build(),
        )
        .await
        .expect("event");
    assert!(event.event_id.as_str().starts_with("evt_"));

    // over budget: 409 BUDGET_EXCEEDED from the workspace budget (1,000,000 allocated)
    let denied = client
        .create_reservation(
            &ReservationCreateRequest::builder()
                .subject(subject("acme"))
                .action(Action::new("llm.completion", "gpt-4o"))
                .estimate(Amount::usd_microcents(2_000_000))
                .build(),
        )
        .await;
    match denied {
        Err(Error::BudgetExceeded { status, .. }) => assert_eq!(status, Some(409)),
        other => panic!("expected BUDGET_EXCEEDED, got {other:?}"),
    }

    let list = client
        .list_reservations(&ListReservationsParams { status: Some("RELEASED".into()), ..Default::default() })
        .await
        .expect("list");
    assert_eq!(list.reservations.len(), 1);
    gw.stop().await;
}
