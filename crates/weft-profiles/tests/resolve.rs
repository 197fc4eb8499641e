//! `resolve` over CSV sources in a real lake: customers, their profiles by
//! survivorship, ids that survive reruns, and history when a profile changes.

use std::path::Path;

use weft_core::config::{IdentityConfig, IdentitySourceConfig};
use weft_lake::Lake;
use weft_profiles::{explain, resolve};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn source(name: &str, path: std::path::PathBuf, map: &[(&str, &str)]) -> IdentitySourceConfig {
    IdentitySourceConfig {
        name: name.to_owned(),
        path: Some(path),
        id_column: "id".to_owned(),
        map: map
            .iter()
            .map(|(c, f)| ((*c).to_owned(), (*f).to_owned()))
            .collect(),
        updated_at: Some("updated".to_owned()),
        consent: None,
        table: None,
        postgres: None,
    }
}

async fn rows(lake: &Lake, sql: &str) -> Vec<Vec<String>> {
    let batches = weft_lake::sql::query(lake, sql).await.unwrap();
    let mut csv = Vec::new();
    weft_lake::sql::write_csv(&batches, &mut csv).unwrap();
    String::from_utf8(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_keep_their_ids_and_profiles_keep_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(&dir.path().join("data"));
    let crm = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,phone,dob,updated\n\
         C1,Ann,Smith,ann.smith@example.com,07911 123456,1990-04-03,2025-01-01\n\
         C2,Robert,Jones,bob@example.org,,1985-11-30,2025-01-02\n",
    );
    let newsletter = write(
        dir.path(),
        "newsletter.csv",
        "id,email,first,updated,consent\n\
         N1,Ann.Smith@Example.com,ANN,2025-06-01,yes\n",
    );
    let mut config = IdentityConfig::default();
    config.web.enabled = false;
    config.sources = vec![
        source(
            "crm",
            crm,
            &[
                ("first", "first_name"),
                ("last", "last_name"),
                ("email", "email"),
                ("phone", "phone"),
                ("dob", "dob"),
            ],
        ),
        IdentitySourceConfig {
            consent: Some("consent".to_owned()),
            ..source(
                "newsletter",
                newsletter,
                &[("email", "email"), ("first", "first_name")],
            )
        },
    ];

    let first = resolve(&lake, &config).await.unwrap();
    assert_eq!((first.run, first.records, first.customers), (1, 3, 2));
    assert_eq!((first.new, first.merged, first.kept), (2, 0, 0));
    let ann = rows(
        &lake,
        "SELECT customer_id, first_name, email, phone, array_to_string(sources, '|'), consent_marketing, emailable \
         FROM profiles.customers WHERE last_name = 'Smith'",
    )
    .await;
    assert_eq!(ann.len(), 1);
    let ann_id = ann[0][0].clone();
    // the CRM is trusted for names; the newsletter's sign-up is the latest email and the consent
    assert_eq!(
        ann[0][1..],
        [
            "Ann",
            "ann.smith@example.com",
            "+447911123456",
            "crm|newsletter",
            "true",
            "true"
        ]
    );
    let map = rows(
        &lake,
        "SELECT kind, value FROM identity.person_map WHERE customer_id IN \
         (SELECT customer_id FROM profiles.customers WHERE last_name = 'Smith') ORDER BY kind, value",
    )
    .await;
    assert!(
        map.contains(&vec!["phone".to_owned(), "+447911123456".to_owned()]),
        "{map:?}"
    );
    assert!(
        map.contains(&vec!["record".to_owned(), "N1".to_owned()]),
        "{map:?}"
    );

    // why Ann's two records are one customer: asked by her email as a person types it
    let context = weft_lake::sql::session(&lake).await.unwrap();
    let why = explain(&context, "Ann.Smith@Example.com")
        .await
        .unwrap()
        .expect("Ann is a customer");
    assert_eq!(why.customer_id, ann_id);
    assert_eq!(why.records, ["crm:C1", "newsletter:N1"]);
    assert_eq!(why.links.len(), 1, "{why:?}");
    let link = &why.links[0];
    assert_eq!(link.rule.as_deref(), Some("email+first_name"));
    assert!(
        link.terms
            .iter()
            .any(|t| t.comparison == "email" && t.level.is_some() && t.weight > 0.0),
        "{link:?}"
    );
    assert_eq!(why.start, "crm:C1");
    assert_eq!(why.paths, [("newsletter:N1".to_owned(), vec![0])]);
    assert_eq!(why.changes, [(1, "first seen".to_owned())]);
    // asked by a record, the paths start there
    let from_n1 = explain(&context, "N1").await.unwrap().unwrap();
    assert_eq!(from_n1.start, "newsletter:N1");
    assert_eq!(from_n1.paths, [("crm:C1".to_owned(), vec![0])]);
    let robert = explain(&context, "crm:C2").await.unwrap().unwrap();
    assert_eq!((robert.records.len(), robert.links.len()), (1, 0));
    assert!(robert.paths.is_empty());
    assert_eq!(explain(&context, "nobody@example.com").await.unwrap(), None);
    assert_eq!(explain(&context, "crm:C9").await.unwrap(), None);

    // a new source arrives: Robert's order with a new phone; Ann is untouched
    let orders = write(
        dir.path(),
        "orders.csv",
        "id,name,email,phone,updated\nO1,Robert Jones,bob@example.org,+44 7427 199553,2025-07-01\n",
    );
    config.sources.push(source(
        "orders",
        orders,
        &[
            ("name", "full_name"),
            ("email", "email"),
            ("phone", "phone"),
        ],
    ));
    let second = resolve(&lake, &config).await.unwrap();
    assert_eq!((second.run, second.customers), (2, 2));
    assert_eq!(
        (second.new, second.merged, second.split, second.kept),
        (0, 0, 0, 2)
    );
    assert_eq!(second.profiles_changed, 1, "only Robert's profile changed");
    let versions = rows(
        &lake,
        "SELECT last_name, phone, is_current, valid_to IS NULL FROM profiles.customers ORDER BY last_name, valid_from",
    )
    .await;
    assert_eq!(
        versions,
        vec![
            vec!["Jones", "", "false", "false"],
            vec!["Jones", "+447427199553", "true", "true"],
            vec!["Smith", "+447911123456", "true", "true"],
        ]
    );
    let still_ann = rows(
        &lake,
        "SELECT customer_id FROM profiles.customers WHERE last_name = 'Smith'",
    )
    .await;
    assert_eq!(still_ann, vec![vec![ann_id]]);

    // nothing new: nothing versioned, no change recorded
    let third = resolve(&lake, &config).await.unwrap();
    assert_eq!((third.run, third.profiles_changed, third.new), (3, 0, 0));
    let changes = rows(
        &lake,
        "SELECT run, change FROM identity.customer_changes ORDER BY run, change",
    )
    .await;
    assert_eq!(changes, vec![vec!["1", "new"], vec!["1", "new"]]);
}

#[tokio::test]
async fn a_bad_source_is_one_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    let mut config = IdentityConfig {
        sources: vec![source(
            "crm",
            write(dir.path(), "crm.csv", "id,mail\n1,a@b.com\n"),
            &[("email", "email")],
        )],
        ..IdentityConfig::default()
    };
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(
        error.contains("crm") && error.contains("map.email"),
        "{error}"
    );
    config.sources[0].table = Some("x.y".to_owned());
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(error.contains("identity.sources[0]"), "{error}");
    config.sources[0].table = None;
    config.sources[0].path = Some(dir.path().join("crm.xlsx"));
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(error.contains(".csv or .parquet"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_is_explained_from_both_ids() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(&dir.path().join("data"));
    let map = [
        ("first", "first_name"),
        ("last", "last_name"),
        ("email", "email"),
        ("uid", "user_id"),
    ];
    // one woman under her maiden and married names: nothing ties them yet
    let crm = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,uid,updated\n1,Ann,Smith,,u-1,2025-01-01\n",
    );
    let orders = write(
        dir.path(),
        "orders.csv",
        "id,first,last,email,uid,updated\n1,Ann,Jones,ann@example.com,,2025-02-01\n",
    );
    let mut config = IdentityConfig::default();
    config.web.enabled = false;
    config.sources = vec![source("crm", crm, &map), source("orders", orders, &map)];
    let first = resolve(&lake, &config).await.unwrap();
    assert_eq!(first.customers, 2);
    let context = weft_lake::sql::session(&lake).await.unwrap();
    let error = explain(&context, "1").await.unwrap_err().to_string();
    assert!(
        error.contains("2 customers") && error.contains("crm:1") && error.contains("orders:1"),
        "{error}"
    );
    let before = [
        explain(&context, "crm:1")
            .await
            .unwrap()
            .unwrap()
            .customer_id,
        explain(&context, "orders:1")
            .await
            .unwrap()
            .unwrap()
            .customer_id,
    ];

    // her app account carries both the user id and the email: one person
    let app = write(
        dir.path(),
        "app.csv",
        "id,first,last,email,uid,updated\nA7,Ann,,ann@example.com,u-1,2025-03-01\n",
    );
    config.sources.push(source("app", app, &map));
    let second = resolve(&lake, &config).await.unwrap();
    assert_eq!((second.customers, second.merged), (1, 1));
    let context = weft_lake::sql::session(&lake).await.unwrap();
    let why = explain(&context, "app:A7").await.unwrap().unwrap();
    assert_eq!(why.records, ["app:A7", "crm:1", "orders:1"]);
    let rules: Vec<_> = why.links.iter().map(|l| l.rule.clone()).collect();
    assert_eq!(
        rules,
        [
            Some("user_id".to_owned()),
            Some("email+first_name".to_owned())
        ],
        "{why:?}"
    );
    assert_eq!(why.paths.len(), 2);
    assert!(before.contains(&why.customer_id));
    let retired = before.iter().find(|id| **id != why.customer_id).unwrap();
    assert!(
        why.changes
            .contains(&(2, format!("{retired} merged into it"))),
        "{:?}",
        why.changes
    );
    // the retired id still explains: it leads to the customer it went into
    let from_retired = explain(&context, retired).await.unwrap().unwrap();
    assert_eq!(from_retired.customer_id, why.customer_id);
    assert_eq!(from_retired.merged_from, Some((retired.clone(), 2)));
    // the evidence is a table anyone can query
    let links = rows(
        &lake,
        "SELECT left_source, right_source, rule, refused IS NULL FROM identity.links ORDER BY rule",
    )
    .await;
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links.iter().all(|l| l[3] == "true"), "{links:?}");
}

/// A table of the lake written from SQL.
async fn write_table(lake: &Lake, name: &str, sql: &str) {
    let (schema, table) = name.split_once('.').unwrap();
    let batches = deltalake::datafusion::prelude::SessionContext::new()
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    lake.table(schema, table)
        .await
        .unwrap()
        .write(batches)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cookies_carry_the_emails_and_phones_their_sign_ups_gave() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(&dir.path().join("data"));
    let at =
        |t: &str| format!("arrow_cast(TIMESTAMP '{t}', 'Timestamp(Microsecond, Some(\"UTC\"))')");
    write_table(
        &lake,
        "derived.user_mapping",
        &format!(
            "SELECT * FROM (VALUES ('ck1', 'u-1', {})) AS t(domain_userid, user_id, last_seen_tstamp)",
            at("2025-03-01 10:00:00")
        ),
    )
    .await;
    // ck1 signed up twice (the later phone is kept); ck2 gave only a phone; ck3 nothing
    write_table(
        &lake,
        "atomic.events",
        &format!(
            "SELECT * FROM (VALUES \
               ('ck1', {}, '[{{\"user_id\":\"u-1\",\"email\":\"Ann@Example.com\",\"phone\":\"07911 000000\"}}]'), \
               ('ck1', {}, '[{{\"user_id\":\"u-1\",\"phone\":\"07911 123456\"}}]'), \
               ('ck2', {}, '[{{\"user_id\":\"u-2\",\"phone\":\"+44 7427 199553\"}}]'), \
               ('ck3', {}, NULL)) AS t(domain_userid, derived_tstamp, contexts_com_acme_user_1)",
            at("2025-03-01 10:00:00"),
            at("2025-03-02 10:00:00"),
            at("2025-03-01 11:00:00"),
            at("2025-03-01 12:00:00"),
        ),
    )
    .await;
    let crm = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,uid,updated\nC1,Ann,Smith,ann.smith@example.com,u-1,2025-01-01\n",
    );
    let mut config = IdentityConfig::default();
    config.web.emails = vec!["contexts_com_acme_user_1.email".to_owned()];
    config.web.phones = vec!["contexts_com_acme_user_1.phone".to_owned()];
    config.sources = vec![source(
        "crm",
        crm,
        &[
            ("first", "first_name"),
            ("last", "last_name"),
            ("email", "email"),
            ("uid", "user_id"),
        ],
    )];
    let report = resolve(&lake, &config).await.unwrap();
    assert_eq!(report.sources[1], ("web".to_owned(), 2), "{report:?}");
    let map = rows(
        &lake,
        "SELECT kind, value FROM identity.person_map WHERE kind IN ('email', 'phone', 'domain_userid') \
         AND customer_id = (SELECT customer_id FROM identity.person_map WHERE value = 'C1') ORDER BY kind, value",
    )
    .await;
    assert_eq!(
        map,
        vec![
            vec!["domain_userid", "ck1"],
            vec!["email", "ann.smith@example.com"],
            vec!["email", "ann@example.com"],
            vec!["phone", "+447911123456"],
        ]
    );
    let alone = rows(
        &lake,
        "SELECT kind, value FROM identity.person_map WHERE customer_id = \
         (SELECT customer_id FROM identity.person_map WHERE value = 'ck2' AND kind = 'record') AND kind = 'phone'",
    )
    .await;
    assert_eq!(alone, vec![vec!["phone", "+447427199553"]]);

    config.web.phones = vec!["contexts_com_acme_user_1".to_owned()];
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(error.contains("identity.web.phones[0]"), "{error}");
}

/// A fresh database on the local PostgreSQL server, dropped when done.
struct Database {
    name: String,
}

impl Database {
    const ADMIN: &'static str = "postgres://postgres@127.0.0.1:5432/postgres";

    async fn create(setup: &str) -> Self {
        let name = format!("weft_profiles_{}", std::process::id());
        let admin = connect(Self::ADMIN).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let database = Self { name };
        connect(&database.url(""))
            .await
            .batch_execute(setup)
            .await
            .unwrap();
        database
    }

    fn url(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:5432/{}",
            self.name
        )
    }

    async fn drop(self) {
        let admin = connect(Self::ADMIN).await;
        admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the local PostgreSQL server (127.0.0.1:5432, user postgres)");
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_table_is_a_source() {
    let database = Database::create(
        r#"CREATE SCHEMA sales;
           CREATE TABLE sales."Customer Records" (
             id text, first text, "Last Name" text, email text, updated timestamptz, consent boolean);
           INSERT INTO sales."Customer Records" VALUES
             ('P1', 'Ann', 'Smith', 'Ann.Smith@example.com', '2025-01-01 10:00:00+02', true),
             ('P2', 'Seán', 'O''Brien', 'sean@example.ie', NULL, NULL),
             ('P3', 'Ann', 'Smith', 'ann.smith@example.com', '2025-03-01 09:30:00.5+00', false),
             (NULL, 'No', 'Id', 'no@example.com', NULL, NULL);"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(&dir.path().join("data"));
    let mut config = IdentityConfig::default();
    config.web.enabled = false;
    config.sources = vec![IdentitySourceConfig {
        name: "pg".to_owned(),
        path: None,
        table: Some("sales.Customer Records".to_owned()),
        postgres: Some(database.url("s3cret")),
        consent: Some("consent".to_owned()),
        ..source(
            "pg",
            dir.path().join("unused.csv"),
            &[
                ("first", "first_name"),
                ("Last Name", "last_name"),
                ("email", "email"),
            ],
        )
    }];
    let report = resolve(&lake, &config).await.unwrap();
    assert_eq!(
        report.sources[0],
        ("pg".to_owned(), 3),
        "the row without an id is left out"
    );
    assert_eq!(report.customers, 2);
    let customers = rows(
        &lake,
        "SELECT first_name, last_name, records, consent_marketing FROM profiles.customers ORDER BY first_name",
    )
    .await;
    // the latest record of Ann (P3, 2025-03-01) says no to marketing
    assert_eq!(
        customers,
        vec![
            vec!["Ann", "Smith", "2", "false"],
            vec!["Seán", "O'Brien", "1", ""]
        ]
    );

    // a table that is not there: the source and the reason, never the password
    config.sources[0].table = Some("sales.nope".to_owned());
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(
        error.contains("pg") && error.contains("does not exist"),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
    config.sources[0].postgres = Some("postgres://postgres:s3cret@127.0.0.1:1/x".to_owned());
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(
        error.contains("cannot connect") && !error.contains("s3cret"),
        "{error}"
    );
    config.sources[0].table = None;
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(error.contains("identity.sources[0]"), "{error}");
    database.drop().await;
}
