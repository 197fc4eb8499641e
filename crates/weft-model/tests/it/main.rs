//! The derived tables on hand-built event sequences with known answers, and on
//! the simulator's traffic loaded in random chunks against a one-shot rebuild.

mod simulated;
mod spark;

use deltalake::arrow::array::RecordBatch;
use futures::StreamExt;
use serde_json::json;
use weft_core::Event;
use weft_core::config::ModelConfig;
use weft_lake::Lake;
use weft_lake::arrow_rows::{EVENT_PARTITION, events_batch};
use weft_model::{ModelReport, Modeller};

/// 2026-03-14 00:00:00 UTC.
const DAY: i64 = 1_773_446_400_000;
const WEB_PAGE: &str = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0";

pub struct Setup {
    _dir: tempfile::TempDir,
    pub lake: Lake,
    loads: i64,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        Self {
            _dir: dir,
            lake,
            loads: 0,
        }
    }

    /// Appends events to `atomic.events` as one load, as the loader would.
    pub async fn load(&mut self, events: &[Event]) {
        self.loads += 1;
        let load_tstamp = DAY + 30 * 86_400_000 + self.loads * 1000;
        let batch = events_batch(events, load_tstamp).unwrap();
        let table = self.lake.table("atomic", "events").await.unwrap();
        table
            .write(vec![batch])
            .with_partition_columns([EVENT_PARTITION])
            .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
            .await
            .unwrap();
    }

    pub fn modeller(&self) -> Modeller {
        Modeller::new(self.lake.clone(), ModelConfig::default())
    }

    pub async fn model(&self) -> ModelReport {
        self.modeller().run().await.unwrap()
    }

    pub async fn query(&self, sql: &str) -> Vec<RecordBatch> {
        weft_lake::sql::query(&self.lake, sql).await.unwrap()
    }

    /// Query results as JSON text, a row a line, for whole-table comparisons.
    pub async fn text(&self, sql: &str) -> String {
        let mut out = String::new();
        for row in self.rows(sql).await {
            out.push_str(&row.to_string());
            out.push('\n');
        }
        out
    }

    /// One row of values as JSON objects.
    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        weft_lake::sql::write_json(&self.query(sql).await, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }
}

/// A browser event of a session, at `at_ms` (device and collector clocks agree).
fn event(kind: &str, cookie: &str, session: &str, page_view: &str, at_ms: i64) -> Event {
    let (event, name) = match kind {
        "pv" => ("page_view", "page_view"),
        "pp" => ("page_ping", "page_ping"),
        "tr" => ("transaction", "transaction"),
        "ti" => ("transaction_item", "transaction_item"),
        other => ("unstruct", other),
    };
    let id = format!("{session}-{kind}-{at_ms}");
    Event {
        app_id: Some("shop".into()),
        platform: Some("web".into()),
        event: Some(event.into()),
        event_name: Some(name.into()),
        event_vendor: Some("com.snowplowanalytics.snowplow".into()),
        event_id: Some(id),
        domain_userid: Some(cookie.into()),
        domain_sessionid: Some(session.into()),
        domain_sessionidx: Some(1),
        collector_tstamp: Some(at_ms),
        dvce_created_tstamp: Some(at_ms),
        derived_tstamp: Some(at_ms),
        page_url: Some(format!("https://shop.example.com/{page_view}")),
        page_urlpath: Some(format!("/{page_view}")),
        br_viewwidth: Some(1000),
        br_viewheight: Some(800),
        doc_width: Some(1000),
        doc_height: Some(2000),
        dvce_type: Some("desktop".into()),
        contexts: Some(json!([{ "schema": WEB_PAGE, "data": { "id": page_view } }])),
        ..Event::default()
    }
}

fn ping(cookie: &str, session: &str, page_view: &str, at_ms: i64, y_max: i64) -> Event {
    Event {
        pp_xoffset_min: Some(0),
        pp_xoffset_max: Some(0),
        pp_yoffset_min: Some(0),
        pp_yoffset_max: Some(y_max),
        ..event("pp", cookie, session, page_view, at_ms)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engaged_time_and_scroll_depth_follow_the_pings() {
    let mut setup = Setup::new();
    let t = DAY + 10 * 3_600_000;
    setup
        .load(&[
            // no pings: nothing engaged, the first screen seen
            event("pv", "c1", "s1", "home", t),
            // pings at +10 s, +20 s, +25 s and +30 s: three heartbeat buckets
            event("pv", "c1", "s1", "product", t + 60_000),
            ping("c1", "s1", "product", t + 70_000, 300),
            ping("c1", "s1", "product", t + 80_000, 500),
            ping("c1", "s1", "product", t + 85_000, 900),
            ping("c1", "s1", "product", t + 90_000, 400),
        ])
        .await;
    let report = setup.model().await;
    assert!(report.full);
    assert_eq!((report.sessions, report.page_views), (1, 2));
    let views = setup
        .rows(
            "SELECT page_view_id, engaged_time_in_s, absolute_time_in_s, vertical_pixels_scrolled, \
             vertical_percentage_scrolled, page_view_in_session_index, page_views_in_session \
             FROM derived.page_views ORDER BY page_view_in_session_index",
        )
        .await;
    assert_eq!(
        views[0],
        json!({"page_view_id": "home", "engaged_time_in_s": 0, "absolute_time_in_s": 0,
               "vertical_pixels_scrolled": 0, "vertical_percentage_scrolled": 40,
               "page_view_in_session_index": 1, "page_views_in_session": 2})
    );
    // 10 × (3 buckets − 1) + 5; scrolled to 900 px of a 2000 px page with an 800 px window
    assert_eq!(
        views[1],
        json!({"page_view_id": "product", "engaged_time_in_s": 25, "absolute_time_in_s": 30,
               "vertical_pixels_scrolled": 900, "vertical_percentage_scrolled": 85,
               "page_view_in_session_index": 2, "page_views_in_session": 2})
    );
    let sessions = setup
        .rows("SELECT page_views, engaged_time_in_s, is_bounce, first_page_urlpath, last_page_urlpath, total_events FROM derived.sessions")
        .await;
    assert_eq!(
        sessions,
        vec![
            json!({"page_views": 2, "engaged_time_in_s": 25, "is_bounce": false,
                    "first_page_urlpath": "/home", "last_page_urlpath": "/product", "total_events": 6})
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_midnight_and_channels() {
    let mut setup = Setup::new();
    let late = DAY + 86_400_000 - 10_000; // 23:59:50
    let mut from_search = event("pv", "c1", "bounce", "home", DAY + 3_600_000);
    from_search.refr_medium = Some("search".into());
    from_search.refr_source = Some("Google".into());
    let mut paid = event("pv", "c2", "midnight", "landing", late);
    paid.mkt_medium = Some("CPC".into());
    paid.mkt_source = Some("google".into());
    setup
        .load(&[
            from_search,
            paid,
            event("pv", "c2", "midnight", "next", late + 30_000), // 00:00:20 the next day
            event("pv", "c3", "direct", "home", DAY + 7_200_000),
        ])
        .await;
    setup.model().await;
    let sessions = setup
        .rows(
            "SELECT domain_sessionid, page_views, is_bounce, default_channel_group, \
             CAST(session_date AS STRING) AS session_date FROM derived.sessions ORDER BY domain_sessionid",
        )
        .await;
    assert_eq!(
        sessions,
        vec![
            json!({"domain_sessionid": "bounce", "page_views": 1, "is_bounce": true,
                   "default_channel_group": "Organic Search", "session_date": "2026-03-14"}),
            json!({"domain_sessionid": "direct", "page_views": 1, "is_bounce": true,
                   "default_channel_group": "Direct", "session_date": "2026-03-14"}),
            json!({"domain_sessionid": "midnight", "page_views": 2, "is_bounce": false,
                   "default_channel_group": "Paid Search", "session_date": "2026-03-14"}),
        ]
    );
    // both page views of the session crossing midnight sit with their session
    let views = setup
        .rows("SELECT count(*) AS n FROM derived.page_views WHERE domain_sessionid = 'midnight' AND session_date = DATE '2026-03-14'")
        .await;
    assert_eq!(views, vec![json!({"n": 2})]);
}

/// The start of day `n` after [`DAY`].
fn session(n: i64) -> i64 {
    DAY + n * 86_400_000
}

/// Cookie c1's sessions s1 and s2 on two days, and another cookie's.
fn two_sessions_of_c1_and_one_of_another() -> Vec<Event> {
    vec![
        event("pv", "c1", "s1", "home", session(0)),
        event("pv", "c1", "s2", "home", session(1)),
        event("pv", "other", "o1", "home", session(1)),
    ]
}

/// c1's third session, s3, where it logs in as user-42.
fn c1_logs_in_on_its_third_session() -> Vec<Event> {
    let mut login = event("login", "c1", "s3", "account", session(2) + 5_000);
    login.user_id = Some("user-42".into());
    vec![event("pv", "c1", "s3", "account", session(2)), login]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_that_logs_in_on_its_third_session_is_stitched_back() {
    let mut setup = Setup::new();
    setup.load(&two_sessions_of_c1_and_one_of_another()).await;
    setup.model().await;
    let stitched =
        "SELECT domain_sessionid, stitched_user_id FROM derived.sessions ORDER BY domain_sessionid";
    assert_eq!(
        setup.rows(stitched).await,
        vec![
            json!({"domain_sessionid": "o1", "stitched_user_id": "other"}),
            json!({"domain_sessionid": "s1", "stitched_user_id": "c1"}),
            json!({"domain_sessionid": "s2", "stitched_user_id": "c1"}),
        ]
    );

    setup.load(&c1_logs_in_on_its_third_session()).await;
    let report = setup.model().await;
    assert!(!report.full);
    assert_eq!(
        (
            report.sessions,
            report.restitched_sessions,
            report.mapped_cookies
        ),
        (1, 2, 1)
    );
    assert_eq!(
        setup.rows(stitched).await,
        vec![
            json!({"domain_sessionid": "o1", "stitched_user_id": "other"}),
            json!({"domain_sessionid": "s1", "stitched_user_id": "user-42"}),
            json!({"domain_sessionid": "s2", "stitched_user_id": "user-42"}),
            json!({"domain_sessionid": "s3", "stitched_user_id": "user-42"}),
        ]
    );
    assert_eq!(
        setup
            .rows("SELECT count(*) AS n FROM derived.page_views WHERE stitched_user_id = 'user-42'")
            .await,
        vec![json!({"n": 3})]
    );
    assert_eq!(
        setup
            .rows("SELECT user_id, stitched_user_id, sessions, page_views FROM derived.users WHERE domain_userid = 'c1'")
            .await,
        vec![json!({"user_id": "user-42", "stitched_user_id": "user-42", "sessions": 3, "page_views": 3})]
    );
    // the older rows were marked deleted in the files they are in, not rewritten with them
    for table in ["page_views", "sessions", "users"] {
        let (marked, files) = files_with_deletion_vectors(&setup, table).await;
        assert!(
            marked >= 1,
            "{table}: {marked} of {files} files have a deletion vector"
        );
    }
    assert_same_as_rebuild(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_without_deletion_vectors_have_their_files_rewritten() {
    let mut setup = Setup::new();
    setup.load(&two_sessions_of_c1_and_one_of_another()).await;
    setup.model().await;
    // s2 goes on in a later load: its first rows are marked deleted in their file
    setup
        .load(&[event("pv", "c1", "s2", "basket", session(1) + 60_000)])
        .await;
    setup.model().await;
    let (marked, _) = files_with_deletion_vectors(&setup, "page_views").await;
    assert!(marked >= 1);
    // as a table made before weft used deletion vectors
    for table in weft_model::DERIVED_TABLES {
        let delta = setup.lake.table("derived", table).await.unwrap();
        delta
            .set_tbl_properties()
            .with_properties(
                [("delta.enableDeletionVectors".to_owned(), "false".to_owned())].into(),
            )
            .await
            .unwrap();
    }

    setup.load(&c1_logs_in_on_its_third_session()).await;
    let report = setup.model().await;
    assert_eq!((report.sessions, report.restitched_sessions), (1, 2));
    // the rows deleted before are not restitched back to life
    assert_eq!(
        setup
            .rows(
                "SELECT domain_sessionid, count(*) AS n, min(stitched_user_id) AS id \
                 FROM derived.page_views GROUP BY domain_sessionid ORDER BY domain_sessionid"
            )
            .await,
        vec![
            json!({"domain_sessionid": "o1", "n": 1, "id": "other"}),
            json!({"domain_sessionid": "s1", "n": 1, "id": "user-42"}),
            json!({"domain_sessionid": "s2", "n": 2, "id": "user-42"}),
            json!({"domain_sessionid": "s3", "n": 1, "id": "user-42"}),
        ]
    );
    for table in ["page_views", "sessions", "users"] {
        let delta = setup.lake.table("derived", table).await.unwrap();
        let newest = delta.history(Some(1)).next().await.unwrap().unwrap();
        assert_eq!(newest.operation.as_deref(), Some("WRITE"), "{table}");
    }
    assert_same_as_rebuild(&setup).await;
}

/// How many of a derived table's files carry a deletion vector, and how many it has.
async fn files_with_deletion_vectors(setup: &Setup, table: &str) -> (usize, usize) {
    let table = setup.lake.table("derived", table).await.unwrap();
    let files: Vec<_> = table.snapshot().unwrap().log_data().iter().collect();
    let marked = files
        .iter()
        .filter(|file| file.deletion_vector_descriptor().is_some())
        .count();
    (marked, files.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_view_sent_more_than_once_is_one_page_view_and_ties_pick_the_least_id() {
    let mut setup = Setup::new();
    let t = DAY + 9 * 3_600_000;
    let copy = |id: &str, title: &str, event: Event| Event {
        event_id: Some(id.into()),
        page_title: Some(title.into()),
        ..event
    };
    let mut events = vec![
        // "home" sent again a minute later: the first copy counts
        copy(
            "home-2",
            "resent",
            event("pv", "c1", "s1", "home", t + 60_000),
        ),
        copy("home-1", "first", event("pv", "c1", "s1", "home", t)),
        ping("c1", "s1", "home", t + 10_000, 100),
        // "cart" twice at the same instant: the least event id counts
        copy(
            "cart-b",
            "greater id",
            event("pv", "c1", "s1", "cart", t + 120_000),
        ),
        copy(
            "cart-a",
            "least id",
            event("pv", "c1", "s1", "cart", t + 120_000),
        ),
        // "shop": one event id at one instant, sent with different payloads: one row
        copy("shop", "one", event("pv", "c1", "s1", "shop", t + 180_000)),
        copy(
            "shop",
            "other",
            event("pv", "c1", "s1", "shop", t + 180_000),
        ),
    ];
    // a cookie whose first two sessions start together, as do its last two:
    // the first is the least session id, the last the greatest
    for (session, at) in [
        ("s2b", t),
        ("s2a", t),
        ("s2d", t + 3_600_000),
        ("s2c", t + 3_600_000),
    ] {
        let page = session.trim_start_matches("s2");
        events.push(event("pv", "c2", session, page, at));
    }
    setup.load(&events).await;
    setup.model().await;
    // every copy was loaded: their ids or payloads differ
    assert_eq!(
        setup
            .rows("SELECT count(*) AS n FROM atomic.events WHERE domain_sessionid = 's1'")
            .await,
        vec![json!({"n": 7})]
    );
    let views = setup
        .rows(
            "SELECT page_view_id, event_id, page_title, engaged_time_in_s, page_view_in_session_index, \
             page_views_in_session FROM derived.page_views WHERE domain_sessionid = 's1' \
             ORDER BY page_view_in_session_index",
        )
        .await;
    assert_eq!(views.len(), 3, "{views:?}");
    assert_eq!(
        views[0],
        json!({"page_view_id": "home", "event_id": "home-1", "page_title": "first",
               "engaged_time_in_s": 5, "page_view_in_session_index": 1, "page_views_in_session": 3})
    );
    assert_eq!(
        views[1],
        json!({"page_view_id": "cart", "event_id": "cart-a", "page_title": "least id",
               "engaged_time_in_s": 0, "page_view_in_session_index": 2, "page_views_in_session": 3})
    );
    assert_eq!(views[2]["page_view_id"], "shop");
    assert!(["one", "other"].contains(&views[2]["page_title"].as_str().unwrap_or("")));
    let sessions = setup
        .rows("SELECT page_views, total_events FROM derived.sessions WHERE domain_sessionid = 's1'")
        .await;
    assert_eq!(sessions, vec![json!({"page_views": 3, "total_events": 7})]);
    let users = setup
        .rows(
            "SELECT sessions, first_page_urlpath, last_page_urlpath FROM derived.users \
             WHERE domain_userid = 'c2'",
        )
        .await;
    assert_eq!(
        users,
        vec![json!({"sessions": 4, "first_page_urlpath": "/a", "last_page_urlpath": "/d"})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ping_and_a_rerun_give_what_a_rebuild_gives() {
    let mut setup = Setup::new();
    let t = DAY + 12 * 3_600_000;
    setup
        .load(&[
            event("pv", "c1", "s1", "home", t),
            ping("c1", "s1", "home", t + 10_000, 100),
        ])
        .await;
    setup.model().await;
    let engaged = "SELECT engaged_time_in_s, vertical_pixels_scrolled FROM derived.page_views";
    assert_eq!(
        setup.rows(engaged).await,
        vec![json!({"engaged_time_in_s": 5, "vertical_pixels_scrolled": 100})]
    );
    // nothing new: nothing done
    let idle = setup.model().await;
    assert_eq!((idle.new_events, idle.sessions), (0, 0));

    // the next ping arrives in a later load
    setup
        .load(&[ping("c1", "s1", "home", t + 20_000, 700)])
        .await;
    let report = setup.model().await;
    assert_eq!((report.new_events, report.sessions), (1, 1));
    assert_eq!(
        setup.rows(engaged).await,
        vec![json!({"engaged_time_in_s": 15, "vertical_pixels_scrolled": 700})]
    );
    assert_same_as_rebuild(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_and_rule_conversions_name_their_session() {
    let mut setup = Setup::new();
    let t = DAY + 15 * 3_600_000;
    let mut tr = event("tr", "c1", "s1", "checkout", t + 1000);
    tr.tr_orderid = Some("ORD-1".into());
    tr.tr_total = Some(42.5);
    tr.tr_currency = Some("GBP".into());
    let item = |category: &str, at: i64| Event {
        ti_orderid: Some("ORD-1".into()),
        ti_category: Some(category.into()),
        ..event("ti", "c1", "s1", "checkout", at)
    };
    let mut bot = event("pv", "crawler", "b1", "home", t);
    bot.dvce_type = Some("bot".into());
    setup
        .load(&[
            event("pv", "c1", "s1", "checkout", t),
            tr,
            item("bread", t + 1001),
            item("dairy", t + 1002),
            item("bread", t + 1003),
            event("sign_up", "c2", "s2", "register", t),
            bot,
        ])
        .await;
    setup.model().await;
    let conversions = setup
        .rows(
            "SELECT conversion_name, order_id, domain_sessionid, value, currency, categories \
             FROM derived.conversions ORDER BY conversion_name",
        )
        .await;
    assert_eq!(
        conversions,
        vec![
            json!({"conversion_name": "sign_up", "domain_sessionid": "s2"}),
            json!({"conversion_name": "transaction", "order_id": "ORD-1", "domain_sessionid": "s1",
                   "value": 42.5, "currency": "GBP", "categories": ["bread", "dairy"]}),
        ]
    );
    // the crawler's session is not modelled
    assert_eq!(
        setup
            .rows("SELECT count(*) AS n FROM derived.sessions WHERE domain_userid = 'crawler'")
            .await,
        vec![json!({"n": 0})]
    );
}

/// Every derived table of `setup`, row for row, equals a full rebuild of the same events.
pub async fn assert_same_as_rebuild(setup: &Setup) {
    let keys = [
        ("page_views", "domain_sessionid, page_view_id"),
        ("sessions", "domain_sessionid"),
        ("conversions", "event_id"),
        ("users", "domain_userid"),
        ("user_mapping", "domain_userid"),
    ];
    let mut incremental = Vec::new();
    for (table, key) in keys {
        incremental.push(
            setup
                .text(&format!("SELECT * FROM derived.{table} ORDER BY {key}"))
                .await,
        );
    }
    // a rebuild in one go, then ones that derive sessions a few events' worth
    // at a time, the buckets held in memory or written to files
    let on_disk = ModelConfig {
        memory_mb: Some(0),
        ..ModelConfig::default()
    };
    for (rebuild, modeller) in [
        ("a rebuild", setup.modeller()),
        (
            "a rebuild in buckets",
            setup.modeller().with_bucket_events(25),
        ),
        (
            "a rebuild in buckets on disk",
            Modeller::new(setup.lake.clone(), on_disk).with_bucket_events(25),
        ),
    ] {
        let report = modeller.rebuild().await.unwrap();
        assert!(report.full);
        // the events split into bucket files are gone once the build is
        let spilled = setup.lake.root().parent().unwrap().join("tmp");
        let left: Vec<_> = std::fs::read_dir(&spilled)
            .map(|dir| dir.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{rebuild} left {left:?}");
        for ((table, key), before) in keys.into_iter().zip(&incremental) {
            let after = setup
                .text(&format!("SELECT * FROM derived.{table} ORDER BY {key}"))
                .await;
            assert!(
                after.lines().count() > 0 || matches!(table, "conversions" | "user_mapping"),
                "derived.{table} is empty"
            );
            assert!(
                *before == after,
                "derived.{table} differs from {rebuild}:\n{}",
                first_difference(before, &after)
            );
        }
    }
}

fn first_difference(a: &str, b: &str) -> String {
    for (line_a, line_b) in a.lines().zip(b.lines()) {
        if line_a != line_b {
            return format!("incremental: {line_a}\nrebuild:     {line_b}");
        }
    }
    format!("{} rows vs {} rows", a.lines().count(), b.lines().count())
}

/// Removes a table's newest commit, as if the run that made it had been killed before it.
fn drop_newest_commit(setup: &Setup, table: &str) {
    let log = setup.lake.table_path("derived", table).join("_delta_log");
    let newest = std::fs::read_dir(&log)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .max()
        .unwrap();
    std::fs::remove_file(newest).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_between_tables_is_finished_by_the_next() {
    let mut setup = Setup::new();
    let day = |n: i64| DAY + n * 86_400_000;
    setup
        .load(&[
            event("pv", "c1", "s1", "home", day(0)),
            event("pv", "c2", "s2", "home", day(0)),
        ])
        .await;
    setup.model().await;
    let mut login = event("login", "c1", "s3", "account", day(1) + 5_000);
    login.user_id = Some("user-7".into());
    setup
        .load(&[
            event("pv", "c1", "s3", "account", day(1)),
            login,
            ping("c2", "s2", "home", day(0) + 10_000, 300),
        ])
        .await;
    setup.model().await;
    // the run is undone from conversions on: page views and sessions have it, the rest not
    for table in ["conversions", "users", "user_mapping"] {
        drop_newest_commit(&setup, table);
    }
    let stale = setup
        .rows("SELECT stitched_user_id FROM derived.users WHERE domain_userid = 'c1'")
        .await;
    assert_eq!(stale, vec![json!({"stitched_user_id": "c1"})]);

    let report = setup.model().await;
    assert!(!report.full);
    assert_eq!(report.restitched_sessions, 1, "s1 is restitched again");
    assert_eq!(
        setup
            .rows("SELECT stitched_user_id, sessions FROM derived.users WHERE domain_userid = 'c1'")
            .await,
        vec![json!({"stitched_user_id": "user-7", "sessions": 2})]
    );
    assert_same_as_rebuild(&setup).await;
}
